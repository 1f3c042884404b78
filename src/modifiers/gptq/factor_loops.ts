/**
 * The batched factor + column loop step GPTQ and SparseGPT share: given
 * weights that each run the blocked column loop on the inverse-Hessian
 * factor of one of several Hessians, it factors every Hessian once per
 * column order and runs every weight's loop in few GPU round trips (each
 * awaited readback costs ≈11 ms of polling on llvmpipe however little work
 * is pending):
 *
 * 1. one batch mirrors every Hessian the weights read and extracts its
 *    diagonal; one `readMany` brings all diagonals back;
 * 2. per wave of factor keys (input + activation order), one batch records
 *    each key's first factorization attempt speculatively
 *    (InverseHessianFactor.recordFirstAttempt: no status read in between)
 *    followed by the column loop of every weight on that factor; one
 *    `readMany` brings back every status and every loop's output. A wave
 *    closes before its bytes (factors + weight chunks) would exceed
 *    `waveBytes`, so a small model's layer is one wave and a large one's
 *    several; each wave's buffers are freed after its readback;
 * 3. a key whose status says the attempt failed (rare: an indefinite
 *    Hessian) takes the slow path: InverseHessianFactor.compute with its
 *    dampening retries and U = I fallback, then one `runColumnLoop` per
 *    weight.
 *
 * Results are bit-identical to computing each factor with
 * InverseHessianFactor.compute and running each weight's loop on it (same
 * kernels, same operations per matrix). What a loop means (GPTQ's
 * qparams, SparseGPT's pruning) is the caller's: each {@link FactorLoopJob}
 * prepares its loop input on a factor and turns the loop's output into
 * its result.
 *
 * @module
 */

import { CommandBatch } from "../../gpu/batch.ts";
import type { Gpu } from "../../gpu/device.ts";
import { type GpuTensor, readMany } from "../../gpu/tensor.ts";
import {
  type ColumnLoopInput,
  type ColumnLoopOutput,
  recordColumnLoop,
  type RecordedColumnLoop,
  runColumnLoop,
} from "./column_loop.ts";
import type { HessianAccumulator } from "./hessian_accumulator.ts";
import {
  type InverseFactorOptions,
  InverseHessianFactor,
  type SpeculativeFactor,
} from "./inverse_hessian_factor.ts";
import { PANEL_BLOCK, roundUp } from "./panel_matrix.ts";
import { recordDiagonal } from "./panel_ops.ts";

/** Default bound on the bytes of one wave of {@link runFactorLoops}. */
export const FACTOR_LOOP_WAVE_BYTES = 256 * 2 ** 20;

/**
 * Wall-clock phases of one weight's factor and loop, ms. A weight done in
 * a wave reports the diagonals' round trip as `prepareMs`, the wall time
 * of its whole wave (all its factorizations and loops, which cannot be
 * told apart) as `loopMs`, `choleskyMs` and `inverseMs` 0, `totalMs` the
 * sum; weights of one wave report the same times. A weight on the slow
 * path reports its factor's phases and its own loop, and as `totalMs` the
 * factor's total plus its own preparation and loop.
 */
export interface FactorLoopTimings {
  /** Diagonal round trip (wave) or the factor's preparation (slow path). */
  readonly prepareMs: number;
  /** The factor's Cholesky attempts (slow path only). */
  readonly choleskyMs: number;
  /** The factor's triangular inverse (slow path only). */
  readonly inverseMs: number;
  /** The wave (wave) or upload, loop and readback (slow path). */
  readonly loopMs: number;
  /** Wave: prepare + wave; slow path: the factor's total + the weight's preparation and loop. */
  readonly totalMs: number;
}

/** A weight's loop prepared on one factor by {@link FactorLoopJob.prepare}. */
export interface PreparedFactorLoop<R> {
  /** The column loop's input; its `factor` must be the one given to `prepare`. */
  readonly loop: ColumnLoopInput;
  /**
   * Builds the weight's result once the loop has run.
   *
   * @param output the loop's output
   * @param timings the phase times to report
   * @returns the result
   */
  finish(output: ColumnLoopOutput, timings: FactorLoopTimings): R;
}

/** One weight of {@link runFactorLoops}. */
export interface FactorLoopJob<R> {
  /** The key of the Hessian its inputs were accumulated in. */
  readonly input: string;
  /** Whether its factor is activation-ordered (jobs of one input and order share a factor). */
  readonly actorder: boolean;
  /** The weight's [rows, cols] (for the wave's byte estimate). */
  readonly shape: readonly [number, number];
  /**
   * Host work between the factor and the loop. Called once on the
   * provisional factor of the wave, and once more on the computed factor
   * when the first attempt failed; should not throw once the caller has
   * validated the weight (a throw mid-wave releases the wave and rethrows).
   *
   * @param factor the factor the loop will run on (perm and dead columns final)
   * @returns the loop's input and how to finish
   */
  prepare(factor: InverseHessianFactor): PreparedFactorLoop<R>;
}

/** Options of {@link runFactorLoops}. */
export interface FactorLoopOptions {
  /** Factor options shared by every key (dampening, retries, panel layout); actorder comes per job. */
  readonly factor: Omit<InverseFactorOptions, "actorder">;
  /** Columns per block of the loops (the byte estimate's error block). */
  readonly blockSize: number;
  /**
   * Bound on the GPU bytes (factors and weight chunks) one wave records
   * before it submits and reads back (default {@link FACTOR_LOOP_WAVE_BYTES};
   * a wave always holds at least one factor).
   */
  readonly waveBytes?: number;
}

/**
 * Runs every job's column loop on the factor of its Hessian: one round
 * trip for all diagonals, then one per wave (see the module doc), plus the
 * slow path's for a key whose first factorization attempt failed.
 * Validate the weights first: nothing here checks what a loop means.
 *
 * @param gpu the device
 * @param hessian the accumulator of an input key (called for every key the jobs name)
 * @param jobs the weights
 * @param options factor options, block size, wave budget
 * @returns one result per job, in order
 * @throws whatever `hessian` or a job's `prepare` throws, and the column
 *   loop's GptqShapeError / GptqConfigError (every buffer of the wave is released)
 * @example
 * ```ts ignore
 * const results = await runFactorLoops(gpu, (key) => hessians.get(key), jobs, {
 *   factor: { dampeningFrac: 0.01, rowAlign: 128 },
 *   blockSize: 128,
 * });
 * ```
 */
export async function runFactorLoops<R>(
  gpu: Gpu,
  hessian: (input: string) => HessianAccumulator,
  jobs: readonly FactorLoopJob<R>[],
  options: FactorLoopOptions,
): Promise<R[]> {
  if (jobs.length === 0) return [];
  // Jobs reading the same input have the same Hessian, so the same
  // inverse-Hessian factor when their activation ordering agrees: one
  // factor per input and order is exact.
  const groups = new Map<string, FactorGroup>();
  jobs.forEach((job, i) => {
    const key = `${job.input}|${job.actorder}`;
    let g = groups.get(key);
    if (g === undefined) {
      groups.set(key, g = { input: job.input, actorder: job.actorder, members: [] });
    }
    g.members.push(i);
  });
  const step: Step<R> = { gpu, hessian, jobs, options, diagonals: new Map(), prepareMs: 0 };
  const t0 = performance.now();
  step.diagonals = await readDiagonals(gpu, hessian, [...new Set(jobs.map((j) => j.input))]);
  step.prepareMs = performance.now() - t0;
  const out: R[] = new Array(jobs.length);
  const budget = options.waveBytes ?? FACTOR_LOOP_WAVE_BYTES;
  const pending = [...groups.values()];
  while (pending.length > 0) {
    // Always at least one factor per wave; more while the estimate fits.
    const wave = [pending.shift()!];
    let bytes = groupBytes(step, wave[0]);
    while (pending.length > 0 && bytes + groupBytes(step, pending[0]) <= budget) {
      bytes += groupBytes(step, pending[0]);
      wave.push(pending.shift()!);
    }
    await runWave(step, wave, out);
  }
  return out;
}

/** The jobs sharing one factor (one input, one activation ordering). */
interface FactorGroup {
  readonly input: string;
  readonly actorder: boolean;
  /** Indices into the jobs. */
  readonly members: number[];
}

/** What every wave of one call shares. */
interface Step<R> {
  readonly gpu: Gpu;
  readonly hessian: (input: string) => HessianAccumulator;
  readonly jobs: readonly FactorLoopJob<R>[];
  readonly options: FactorLoopOptions;
  /** diag(H) per input, `columns` values. */
  diagonals: Map<string, Float32Array>;
  /** The diagonals' round trip, ms. */
  prepareMs: number;
}

/** Mirrors every Hessian and reads all their diagonals with one wait. */
async function readDiagonals(
  gpu: Gpu,
  hessian: (input: string) => HessianAccumulator,
  inputs: readonly string[],
): Promise<Map<string, Float32Array>> {
  const batch = new CommandBatch(gpu);
  const tensors: GpuTensor[] = [];
  try {
    for (const input of inputs) {
      const h = hessian(input);
      h.recordSymmetrize(batch);
      tensors.push(recordDiagonal(batch, h.matrix));
    }
    const host = await readMany(tensors);
    return new Map(
      inputs.map((input, i) => [input, (host[i] as Float32Array).slice(0, hessian(input).columns)]),
    );
  } finally {
    batch.submit();
    for (const t of tensors) t.destroy();
  }
}

/**
 * Estimated GPU bytes of one group's wave work: U and the inverse's work
 * matrix (order² f32 each, plus scratch) and, per weight, its transposed
 * chunks, zero mask, error block and losses.
 */
function groupBytes<R>(step: Step<R>, g: FactorGroup): number {
  const order = roundUp(step.hessian(g.input).columns, PANEL_BLOCK);
  let bytes = 2 * order * order * 4 + 4 * PANEL_BLOCK * order * 4;
  for (const i of g.members) {
    const ld = roundUp(step.jobs[i].shape[0], 8);
    bytes += (2 * order + step.options.blockSize + 1) * ld * 4;
  }
  return bytes;
}

function factorOptions<R>(step: Step<R>, actorder: boolean): InverseFactorOptions {
  return { ...step.options.factor, actorder };
}

/** One wave: speculative factors and every loop on them, one submit, one readback. */
async function runWave<R>(step: Step<R>, wave: readonly FactorGroup[], out: R[]): Promise<void> {
  const { gpu, hessian, jobs } = step;
  const t0 = performance.now();
  const batch = new CommandBatch(gpu);
  const recorded: Array<{
    group: FactorGroup;
    spec: SpeculativeFactor;
    loops: Array<{ index: number; prepared: PreparedFactorLoop<R>; loop: RecordedColumnLoop }>;
  }> = [];
  const failed: FactorGroup[] = [];
  try {
    for (const group of wave) {
      const spec = InverseHessianFactor.recordFirstAttempt(
        batch,
        hessian(group.input),
        step.diagonals.get(group.input)!,
        factorOptions(step, group.actorder),
      );
      const entry = { group, spec, loops: [] as (typeof recorded)[number]["loops"] };
      recorded.push(entry);
      spec.releaseScratch();
      for (const index of group.members) {
        const prepared = jobs[index].prepare(spec.factor);
        entry.loops.push({ index, prepared, loop: recordColumnLoop(batch, prepared.loop) });
      }
      // Runs nothing sooner on the whole, but lets the scratch go back to the pool.
      batch.submit();
    }
    const host = await readMany(
      recorded.flatMap((e) => [e.spec.status, ...e.loops.flatMap((x) => x.loop.readback)]),
    );
    const waveMs = performance.now() - t0;
    const timings: FactorLoopTimings = {
      prepareMs: step.prepareMs,
      choleskyMs: 0,
      inverseMs: 0,
      loopMs: waveMs,
      totalMs: step.prepareMs + waveMs,
    };
    let at = 0;
    for (const e of recorded) {
      const ok = (host[at++] as Uint32Array)[0] === 0;
      for (const x of e.loops) {
        const n = x.loop.readback.length;
        if (ok) out[x.index] = x.prepared.finish(x.loop.finish(host.slice(at, at + n)), timings);
        at += n;
      }
      if (!ok) failed.push(e.group);
    }
  } finally {
    batch.submit();
    for (const e of recorded) {
      for (const x of e.loops) x.loop.destroy();
      e.spec.status.destroy();
      e.spec.factor.destroy();
    }
  }
  // The rare failed first attempt: the slow path, retries and fallback included.
  for (const group of failed) {
    const factor = await InverseHessianFactor.compute(
      gpu,
      hessian(group.input),
      factorOptions(step, group.actorder),
    );
    try {
      const ft = factor.timings;
      for (const index of group.members) {
        const t1 = performance.now();
        const prepared = jobs[index].prepare(factor);
        const loop = await runColumnLoop(gpu, prepared.loop);
        out[index] = prepared.finish(loop, {
          prepareMs: ft.prepareMs,
          choleskyMs: ft.choleskyMs,
          inverseMs: ft.inverseMs,
          loopMs: loop.ms,
          totalMs: ft.totalMs + performance.now() - t1,
        });
      }
    } finally {
      factor.destroy();
    }
  }
}
