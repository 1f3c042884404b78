/**
 * The machinery behind `gemm.ts`: one shared `WebAssembly.Memory`, the
 * kernels instantiated on it by the main thread and by a pool of worker
 * threads, and a synchronous job protocol over an int32 block in that memory.
 *
 * A call copies its operands into the memory, writes the job (operand
 * addresses, strides, the number of column stripes), publishes it by storing
 * a fresh generation into CLAIM, wakes the workers, runs stripes itself, and
 * waits with `Atomics.wait` until DONE counts every stripe. Stripes are
 * claimed by compare-and-swap on (generation, next index), so a worker that
 * wakes late for an old job can never take a stripe of a newer one. Once a
 * job is done its claim word is closed (index past any task count) before
 * the next job's fields are written: a late worker whose compare-and-swap
 * still saw the old generation would otherwise accept the new NTASKS and run
 * an extra stripe (twice into an accumulated Gram, and counted in the new
 * job's DONE). The main thread never waits for a worker to start: if none is
 * up yet it simply runs every stripe itself.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import {
  ATTENTION_ROW_MULTIPLE,
  type GemmExports,
  JOB,
  JOB_ADDRESS,
  JOB_SLOTS,
  KC,
  MAX_PAGES,
  MC,
  NC_MAX,
  NR,
  PAGE_BYTES,
  SCRATCH_ADDRESS,
  SCRATCH_STRIDE,
} from "./_gemm_layout.ts";
import { LlmcError } from "../../errors.ts";
import { memoryBase, type NativeGemm, openNativeGemm, probeNativeGemm } from "./_gemm_native.ts";
import { stampMismatch } from "./_kernel_stamp.ts";

/**
 * A CPU kernel's operands are malformed, its memory cannot hold them, or a
 * kernel thread failed.
 *
 * @example
 * ```ts
 * import { CpuKernelError } from "./_gemm_runtime.ts";
 * const e = new CpuKernelError("matmul: a holds 5 floats, needs 6");
 * console.assert(e.name === "CpuKernelError");
 * ```
 */
export class CpuKernelError extends LlmcError {}

/**
 * The row stride (float64 values) of the lower-triangular inverse's work
 * matrix (see run_lower_inverse_block in gemm.c): b rounded up to 8, so
 * that every group of eight columns lies within a row.
 *
 * @param b the block's order
 * @returns the stride
 */
export function lowerInverseStride(b: number): number {
  return Math.ceil(b / 8) * 8;
}

/** Below this many flops a job runs on the calling thread alone (waking a worker costs more). */
const THREADED_MIN_FLOPS = 1 << 22;
/**
 * Floats from which the native build's threads share a copy between a host
 * array and the kernels' memory (1 MiB; smaller ones are not worth waking a
 * worker, and V8 may keep the smallest arrays on its moving heap).
 */
const HOST_COPY_MIN = 1 << 18;
/** Tasks per thread a threaded product against packed B is cut into (see runPacked). */
const PACKED_TASKS_PER_THREAD = 8;
/** Column stripe width of a threaded Gram's upper triangle (see gramUpper). */
const GRAM_STRIPE = 6 * NR;
/** Narrowest column group of a product against packed B. */
const GROUP_MIN_WIDTH = 8 * NR;

const KERNEL_DIR = new URL("./kernels/", import.meta.url);

/** The bytes of a committed kernel module in `kernels/`. */
export function readKernel(name: string): Uint8Array<ArrayBuffer> {
  const url = new URL(name, KERNEL_DIR);
  if (url.protocol !== "file:") {
    throw new CpuKernelError(
      `CPU kernels: ${url.href} is not a local file; the CPU engine needs llmc on the local file system`,
    );
  }
  try {
    return Deno.readFileSync(url);
  } catch (e) {
    throw new CpuKernelError(`CPU kernels: cannot read ${url.pathname}: ${e}`, { cause: e });
  }
}

/**
 * Which build of the kernels runs the products: "avx2" the native x86-64
 * library (see _gemm_native.ts), "relaxed" WebAssembly with
 * f32x4.relaxed_madd, "simd" WebAssembly with a separate multiply and add.
 */
export type KernelVariant = "avx2" | "relaxed" | "simd";

const VARIANTS: readonly KernelVariant[] = ["avx2", "relaxed", "simd"];

/** Environment variable that forces a build, as the `variant` option does. */
export const KERNEL_VARIANT_ENV = "LLMC_CPU_KERNELS";

/** Loads a WebAssembly build's bytes, or null when this runtime cannot validate it. */
export function loadVariant(variant: "relaxed" | "simd"): Uint8Array<ArrayBuffer> | null {
  const bytes = readKernel(`gemm_${variant}.wasm`);
  return WebAssembly.validate(bytes) ? bytes : null;
}

/** The builds a runtime loads: the WebAssembly module and, for "avx2", the native library. */
interface KernelChoice {
  variant: KernelVariant;
  bytes: Uint8Array<ArrayBuffer>;
  /** The WebAssembly build's file name in `kernels/`. */
  file: string;
  native: string | null;
  /** Why the native build is not used, when it is not. */
  note: string | null;
}

/** The requested build (option, else LLMC_CPU_KERNELS), else the fastest this process can run. */
function chooseKernels(requested: KernelVariant | undefined): KernelChoice {
  const fromEnv = requested ? undefined : Deno.env.get(KERNEL_VARIANT_ENV) || undefined;
  if (fromEnv !== undefined && !VARIANTS.includes(fromEnv as KernelVariant)) {
    throw new CpuKernelError(
      `CPU kernels: ${KERNEL_VARIANT_ENV}=${fromEnv} is not one of ${VARIANTS.join(", ")}`,
    );
  }
  const wanted = requested ?? fromEnv as KernelVariant | undefined;
  // The WebAssembly module is loaded in every case: with the native library
  // it still serves mirror_upper, and the relaxed build gives the native bits.
  const relaxed = wanted === "simd" ? null : loadVariant("relaxed");
  const simd = relaxed ? null : loadVariant("simd");
  if (wanted === "relaxed" && !relaxed) {
    throw new CpuKernelError("CPU kernels: this runtime cannot run the relaxed build");
  }
  const wasm = relaxed
    ? { variant: "relaxed" as const, bytes: relaxed, file: "gemm_relaxed.wasm" }
    : simd
    ? { variant: "simd" as const, bytes: simd, file: "gemm_simd.wasm" }
    : null;
  if (!wasm) {
    throw new CpuKernelError("CPU kernels: this runtime has no WebAssembly SIMD (simd128)");
  }
  if (wanted !== undefined && wanted !== "avx2") return { ...wasm, native: null, note: null };
  const probe = probeNativeGemm();
  if (probe.ok) return { ...wasm, variant: "avx2", native: probe.path, note: null };
  if (wanted === "avx2") {
    throw new CpuKernelError(`CPU kernels: the avx2 build cannot run here: ${probe.reason}`);
  }
  return { ...wasm, native: null, note: probe.reason };
}

/** What a pool thread is given: the kernels, the shared memory, its thread id, the native library's path or null. */
export interface GemmWorkerData {
  readonly module: Uint8Array<ArrayBuffer>;
  readonly memory: WebAssembly.Memory;
  readonly tid: number;
  readonly native: string | null;
}

/** Options of a {@linkcode GemmRuntime}. */
export interface GemmRuntimeOptions {
  /** Threads including the calling one; default navigator.hardwareConcurrency. */
  threads?: number;
  /**
   * Force a build; default: LLMC_CPU_KERNELS when set, else the native AVX2
   * library where it can run, else relaxed-SIMD when valid here, else plain SIMD.
   */
  variant?: KernelVariant;
  /** What the pool threads are (default "node"; see {@linkcode PoolWorkers}). */
  workers?: PoolWorkers;
}

/**
 * The kind of the pool threads. "node": `node:worker_threads` workers,
 * `unref()`ed, so they never keep the process alive; Deno's constructor waits
 * for each one's Node runtime (~60–75 ms of the main thread each, measured on
 * the 2-core development machine). "web": web Workers, which start in ~15–25 ms
 * but, blocked in `Atomics.wait`, keep the process alive until it calls
 * `Deno.exit` (or `close()` ends them): only for a program that always ends
 * that way, such as the CLI.
 */
export type PoolWorkers = "node" | "web";

/** One GEMM job: C[m,n] (+)= A[m,k]·B[k,n] through element strides (see gemm.c). */
export interface GemmJob {
  m: number;
  n: number;
  k: number;
  a: number;
  aRowStride: number;
  aColStride: number;
  b: number;
  bRowStride: number;
  bColStride: number;
  c: number;
  ldc: number;
  accumulate: boolean;
  /**
   * Products in the job (default 1): product b reads A + b·aBatchStride,
   * B + ⌊b / bGroup⌋·bBatchStride and writes C + b·cBatchStride (elements).
   */
  batch?: number;
  aBatchStride?: number;
  bBatchStride?: number;
  cBatchStride?: number;
  bGroup?: number;
  /**
   * Causal attention (rows are queries, offset = kvLen − seq): "scores" skips
   * tiles whose keys all lie in their queries' future (left unwritten);
   * "values" skips k slices that only meet zero probabilities.
   */
  causal?: { kind: "scores" | "values"; offset: number };
}

/**
 * A pack job: B's rows [p0, p1) and columns [j0, j1), staged at `stage`
 * (B(p, j) = stage[(p − p0)·rowStride + (j − j0)·colStride]), packed into
 * the whole product's packed B at `packed` (k × align(n, NR) floats). p0 is
 * a multiple of KC, j0 of NR, and p1 is a multiple of KC or k.
 */
export interface PackJob {
  k: number;
  n: number;
  stage: number;
  rowStride: number;
  colStride: number;
  packed: number;
  p0: number;
  p1: number;
  j0: number;
  j1: number;
  /**
   * The staged part read from a host array at this address instead of from
   * `stage` (native build only: an address from {@link GemmRuntime.hostAddress}).
   */
  stageHost?: bigint | null;
}

/** A plain product C[m,n] (+)= A[m,k]·B[k,n] against B packed by {@link GemmRuntime.packB}. */
export interface PackedJob {
  m: number;
  n: number;
  k: number;
  a: number;
  aRowStride: number;
  aColStride: number;
  packed: number;
  c: number;
  ldc: number;
  accumulate: boolean;
  /**
   * A's rows read from a host array at this address instead of from `a`
   * (native build only: an address from {@link GemmRuntime.hostAddress}).
   */
  aHost?: bigint | null;
  /** C written into a host array at this address instead of at `c` (as `aHost`). */
  cHost?: bigint | null;
}

/**
 * A GPTQ column block for {@link GemmRuntime.columnBlock}: byte addresses of
 * the block's weight columns `w` [rows, count] (updated), U's block `u`
 * [count, count], the errors `err` [rows, count] and float64 loss `terms`
 * [rows, count] (written), the slots' `scale` and `zero` (float32) and the
 * block's columns' `slot` (uint32); the grid's clamp bounds and slot layout.
 */
export interface ColumnBlockJob {
  rows: number;
  count: number;
  w: number;
  u: number;
  err: number;
  terms: number;
  scale: number;
  zero: number;
  slot: number;
  rowDiv: number;
  slotRowStride: number;
  qmin: number;
  qmax: number;
  /** Byte address of the block's uint8 zero mask [rows, count] (a sparse weight's), or 0 for none. */
  mask?: number;
}

/** The claim word keeps a task index in 16 bits. */
const MAX_TASKS = 0xffff;
/** JOB.FAILED's value when a task's op is one the loaded kernels lack (gemm.c's UNKNOWN_OP). */
const UNKNOWN_OP = 2;
/** A claim index no job's NTASKS exceeds: no stripe can be claimed under it. */
const CLOSED = MAX_TASKS;

/** The shared memory, the kernels on it, and the worker pool. */
export class GemmRuntime {
  readonly threads: number;
  readonly variant: KernelVariant;
  /** Why the native build is not in use, when the build was chosen by default and it is not. */
  readonly nativeNote: string | null;
  readonly memory: WebAssembly.Memory;
  readonly #kernels: GemmExports;
  readonly #native: NativeGemm | null;
  readonly #base: Deno.PointerValue;
  readonly #job: Int32Array;
  readonly #workers: { terminate(): unknown }[] = [];
  readonly #heapBase: number;
  #gen = 0;
  #closed = false;

  constructor(options: GemmRuntimeOptions = {}) {
    const threads = options.threads ?? Math.max(1, navigator.hardwareConcurrency || 1);
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new CpuKernelError(`CPU kernels: threads must be an integer in 1..256, got ${threads}`);
    }
    this.threads = threads;
    const { variant, bytes, file, native, note } = chooseKernels(options.variant);
    this.variant = variant;
    this.nativeNote = note;
    this.#heapBase = align(SCRATCH_ADDRESS + threads * SCRATCH_STRIDE, 64);
    const initial = Math.ceil((this.#heapBase + (1 << 20)) / PAGE_BYTES);
    this.memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory: this.memory },
    });
    this.#kernels = instance.exports as unknown as GemmExports;
    const stale = stampMismatch(file, "gemm.c", this.#kernels.gemm_stamp());
    if (stale !== null) throw new CpuKernelError(`CPU kernels: ${stale}`);
    this.#native = native ? openNativeGemm(native) : null;
    // Taking a pointer needs FFI permission: only the native build asks.
    this.#base = this.#native ? memoryBase(this.memory) : null;
    this.#job = new Int32Array(this.memory.buffer, JOB_ADDRESS, JOB_SLOTS);
    Atomics.store(this.#job, JOB.CLAIM, CLOSED);
    const script = new URL("./_gemm_worker.ts", import.meta.url);
    for (let tid = 1; tid < threads; tid++) {
      const workerData: GemmWorkerData = { module: bytes, memory: this.memory, tid, native };
      if (options.workers === "web") {
        // The worker waits for its data in its first message (see _gemm_worker.ts).
        const worker = new globalThis.Worker(script, { type: "module" });
        worker.postMessage(workerData);
        this.#workers.push(worker);
      } else {
        const worker = new Worker(script, { workerData });
        // A pool thread must not keep the process alive once the program is done.
        worker.unref();
        this.#workers.push(worker);
      }
    }
  }

  /** First byte the operands of a call may use. */
  get heapBase(): number {
    return this.#heapBase;
  }

  /** Grows the memory to hold `bytes` past heapBase, or throws saying why not. */
  reserve(bytes: number, what: string): void {
    const needed = this.#heapBase + bytes;
    const have = this.memory.buffer.byteLength;
    if (needed <= have) return;
    const pages = Math.ceil(needed / PAGE_BYTES);
    if (pages > MAX_PAGES) {
      throw new CpuKernelError(
        `CPU kernels: ${what} needs ${(needed / 2 ** 20).toFixed(0)} MiB of WebAssembly memory; ` +
          `a wasm32 memory holds at most 4096 MiB. Split the operands (fewer rows per call).`,
      );
    }
    try {
      this.memory.grow(pages - have / PAGE_BYTES);
    } catch (e) {
      throw new CpuKernelError(
        `CPU kernels: cannot grow WebAssembly memory to ${
          (needed / 2 ** 20).toFixed(0)
        } MiB for ${what}: ${e}`,
        { cause: e },
      );
    }
    // The native kernels and every worker hold the first byte's address: a
    // shared memory grows in place, so this never fires unless a runtime
    // moves one (which would make the native build unsafe).
    if (
      this.#native &&
      Deno.UnsafePointer.value(memoryBase(this.memory)) !== Deno.UnsafePointer.value(this.#base)
    ) {
      // The workers hold the old address: nothing may run on this runtime again.
      this.close();
      throw new CpuKernelError("CPU kernels: the shared memory moved when it grew");
    }
  }

  /** A float32 view of `length` floats at byte address `address` (valid until the next reserve). */
  f32(address: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, address, length);
  }

  /** Runs one GEMM job to completion on up to `threads` threads. */
  run(job: GemmJob): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { m, n, k } = job;
    const batch = job.batch ?? 1;
    if (m === 0 || n === 0 || batch === 0) return;
    const flops = 2 * m * n * k * batch;
    const threaded = this.#workers.length > 0 && flops >= THREADED_MIN_FLOPS;
    // Enough tasks that threads can share them (four per thread balances a
    // busy core), stripes no narrower than 4 micro-panels, no wider than NC_MAX.
    const parts = threaded ? Math.ceil((4 * this.threads) / batch) : 1;
    // Causal scores skip the rows below a stripe's start: narrower stripes
    // waste fewer flops on the tiles that straddle the diagonal.
    const widest = job.causal?.kind === "scores" ? NC_MAX / 4 : NC_MAX;
    const nc = Math.min(widest, Math.max(4 * NR, align(Math.ceil(n / parts), NR)));
    const nstripes = Math.ceil(n / nc);
    if (nstripes > MAX_TASKS) {
      throw new CpuKernelError(
        `CPU kernels: ${n} columns is more than this kernel's task counter holds`,
      );
    }
    // Batches past what the 16-bit task counter can index run as further jobs
    // (whole groups of batches that share one B, so B's offset stays right).
    const group = job.bGroup ?? 1;
    let perJob = Math.floor(MAX_TASKS / nstripes);
    if (batch > perJob) {
      perJob -= perJob % group;
      if (perJob === 0) {
        throw new CpuKernelError(
          `CPU kernels: a group of ${group} batches is too large for one job`,
        );
      }
      const { aBatchStride = 0, bBatchStride = 0, cBatchStride = 0 } = job;
      for (let b0 = 0; b0 < batch; b0 += perJob) {
        this.run({
          ...job,
          batch: Math.min(perJob, batch - b0),
          a: job.a + 4 * b0 * aBatchStride,
          b: job.b + 4 * (b0 / group) * bBatchStride,
          c: job.c + 4 * b0 * cBatchStride,
        });
      }
      return;
    }
    const ntasks = nstripes * batch;
    const s = this.#writeProduct(job);
    s[JOB.B] = job.b;
    s[JOB.B_RS] = job.bRowStride;
    s[JOB.B_CS] = job.bColStride;
    s[JOB.NC] = nc;
    s[JOB.NSTRIPES] = nstripes;
    s[JOB.A_BS] = job.aBatchStride ?? 0;
    s[JOB.B_BS] = job.bBatchStride ?? 0;
    s[JOB.C_BS] = job.cBatchStride ?? 0;
    s[JOB.B_GROUP] = job.bGroup ?? 1;
    s[JOB.CAUSAL] = job.causal ? (job.causal.kind === "scores" ? 1 : 2) : 0;
    s[JOB.CAUSAL_OFFSET] = job.causal?.offset ?? 0;
    s[JOB.SCRATCH] = SCRATCH_ADDRESS;
    s[JOB.SCRATCH_STRIDE] = SCRATCH_STRIDE;
    s[JOB.PACKED] = 0;
    this.#dispatch(ntasks, threaded);
  }

  /**
   * Packs a staged part of B into NR-wide micro-panels, KC slice by slice
   * (see run_pack_b in gemm.c); tasks are groups of micro-panels of one slice.
   */
  packB(job: PackJob): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { k, n, p0, p1, j0, j1 } = job;
    if (p1 <= p0 || j1 <= j0) return;
    const slices = Math.ceil((p1 - p0) / KC);
    const panels = Math.ceil((j1 - j0) / NR);
    // Packing moves a float for a few operations: thread it from about the
    // size where a product of the same flops would be threaded.
    const threaded = this.#workers.length > 0 && 8 * (p1 - p0) * (j1 - j0) >= THREADED_MIN_FLOPS;
    const perSlice = threaded ? Math.min(panels, Math.ceil((4 * this.threads) / slices)) : 1;
    const group = Math.ceil(panels / perSlice);
    const ntasks = slices * Math.ceil(panels / group);
    if (ntasks > MAX_TASKS) {
      throw new CpuKernelError(`CPU kernels: packing ${p1 - p0} × ${j1 - j0} needs too many tasks`);
    }
    const s = this.#job;
    s[JOB.OP] = job.stageHost ? 60 : 2;
    if (job.stageHost) setAddress(s, JOB.Q_SCALE, JOB.Q_ZERO, job.stageHost);
    s[JOB.K] = k;
    s[JOB.B] = job.stage;
    s[JOB.B_RS] = job.rowStride;
    s[JOB.B_CS] = job.colStride;
    s[JOB.PACKED] = job.packed;
    s[JOB.NPAD] = align(n, NR);
    s[JOB.P0] = p0;
    s[JOB.J0] = j0;
    s[JOB.J1] = j1;
    s[JOB.GROUP] = group;
    s[JOB.NSTRIPES] = ntasks;
    this.#dispatch(ntasks, threaded);
  }

  /**
   * Runs a plain product against B packed by {@link packB}: tasks are blocks
   * of MC rows by groups of columns (see run_rows in gemm.c).
   */
  runPacked(job: PackedJob): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { m, n, k } = job;
    if (m === 0 || n === 0) return;
    const threaded = this.#workers.length > 0 && 2 * m * n * k >= THREADED_MIN_FLOPS;
    const rowBlocks = Math.ceil(m / MC);
    // Enough tasks that threads can share them. The calling thread waits only
    // for the tasks a worker still holds once none is left to claim, so the
    // tail is about one task: eight per thread keep it short. A column group
    // repacks its rows of A (mc·k floats against 2·mc·k·width flops), so
    // groups stay at least GROUP_MIN_WIDTH wide.
    const groups = threaded
      ? Math.min(
        Math.ceil((PACKED_TASKS_PER_THREAD * this.threads) / rowBlocks),
        Math.ceil(n / GROUP_MIN_WIDTH),
      )
      : 1;
    const width = align(Math.ceil(n / groups), NR);
    const ngroups = Math.ceil(n / width);
    const ntasks = rowBlocks * ngroups;
    if (ntasks > MAX_TASKS) {
      throw new CpuKernelError(`CPU kernels: a product of ${m} rows needs too many tasks`);
    }
    const s = this.#writeProduct(job);
    s[JOB.PACKED] = job.packed;
    setAddress(s, JOB.P0, JOB.J0, job.aHost ?? 0n);
    setAddress(s, JOB.J1, JOB.GROUP, job.cHost ?? 0n);
    s[JOB.NPAD] = align(n, NR);
    s[JOB.NC] = width;
    s[JOB.NSTRIPES] = ngroups;
    s[JOB.SCRATCH] = SCRATCH_ADDRESS;
    s[JOB.SCRATCH_STRIDE] = SCRATCH_STRIDE;
    this.#dispatch(ntasks, threaded);
  }

  /**
   * The upper triangle of a Gram product C[m, n] (+)= xᵀx with x's k rows
   * packed by {@link packB} at `packed` (its columns as B's; see
   * run_gram_upper in gemm.c): tasks are column stripes that share that one
   * packed copy, the widest-reaching first.
   */
  gramUpper(job: {
    m: number;
    n: number;
    k: number;
    packed: number;
    c: number;
    ldc: number;
    accumulate: boolean;
  }): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { m, n, k } = job;
    if (m === 0 || n === 0) return;
    const threaded = this.#workers.length > 0 && m * n * k >= THREADED_MIN_FLOPS;
    // Stripes of two column triples (the native 4 × 24 kernel's width): no
    // stripe repacks anything, so they can be narrow enough that the
    // triangle's uneven stripes balance between the threads (largest first),
    // and the square on each stripe's diagonal wastes few flops.
    const nc = threaded ? GRAM_STRIPE : align(n, NR);
    const nstripes = Math.ceil(n / nc);
    if (nstripes > MAX_TASKS) {
      throw new CpuKernelError(`CPU kernels: a Gram of ${n} columns needs too many tasks`);
    }
    const s = this.#writeProduct({ ...job, a: 0, aRowStride: 0, aColStride: 0 });
    s[JOB.OP] = 61;
    s[JOB.PACKED] = job.packed;
    s[JOB.NPAD] = align(n, NR);
    s[JOB.NC] = nc;
    s[JOB.NSTRIPES] = nstripes;
    s[JOB.SCRATCH] = SCRATCH_ADDRESS;
    s[JOB.SCRATCH_STRIDE] = SCRATCH_STRIDE;
    this.#dispatch(nstripes, threaded);
  }

  /**
   * A running Hessian's update from a Gram block at byte address `block`
   * (`rows` rows, row i holding h's row i0 + i from column i0 on, `ldc`
   * floats apart): h ← h·beta + alpha·g in float64 on h's upper triangle,
   * written straight into the host array h (k × k) by the native threads
   * (run_gram_scale_add in gemm.c). False, and nothing done, where h cannot
   * be read in place (see {@link hostAddress}).
   */
  gramScaleAdd(job: {
    h: Float32Array;
    k: number;
    i0: number;
    rows: number;
    block: number;
    ldc: number;
    beta: number;
    alpha: number;
  }): boolean {
    const h = this.hostAddress(job.h);
    if (h === null) return false;
    // About three operations an element, half of each block row's width on average.
    this.#runChunked(62, job.rows, 2 * job.ldc, 1, (s) => {
      setAddress(s, JOB.Q_SCALE, JOB.Q_ZERO, h);
      s[JOB.M] = job.rows;
      s[JOB.K] = job.k;
      s[JOB.A] = job.i0;
      s[JOB.C] = job.block;
      s[JOB.LDC] = job.ldc;
      new Float64Array(s.buffer, s.byteOffset + JOB.EPS * 4, 1)[0] = job.beta;
      new Float64Array(s.buffer, s.byteOffset + JOB.FWHT_SCALE * 4, 1)[0] = job.alpha;
    });
    return true;
  }

  /**
   * Attention probabilities in place: each row of each head's scores
   * [seq, kvLen] at `p` becomes softmax(scale · row) over its visible keys
   * (query i sees keys (i + kvLen − seq − window, i + kvLen − seq]; window 0
   * for all), and 0 elsewhere.
   */
  softmax(job: {
    p: number;
    heads: number;
    seq: number;
    kvLen: number;
    window: number;
    scale: number;
  }): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { heads, seq, kvLen } = job;
    if (heads === 0 || seq === 0 || kvLen === 0) return;
    // About 20 operations per score; rows in chunks so threads can share a head.
    const threaded = this.#workers.length > 0 && 20 * heads * seq * kvLen >= THREADED_MIN_FLOPS;
    const perHead = threaded ? Math.ceil((4 * this.threads) / heads) : 1;
    const rows = Math.ceil(seq / perHead);
    const chunks = Math.ceil(seq / rows);
    if (chunks * heads > MAX_TASKS) {
      throw new CpuKernelError(`CPU kernels: softmax of ${heads} heads is too large for one job`);
    }
    const s = this.#job;
    s[JOB.OP] = 1;
    s[JOB.PACKED] = 0;
    s[JOB.M] = seq;
    s[JOB.N] = kvLen;
    s[JOB.NC] = rows;
    s[JOB.NSTRIPES] = chunks;
    s[JOB.C] = job.p;
    s[JOB.C_BS] = seq * kvLen;
    s[JOB.CAUSAL_OFFSET] = kvLen - seq;
    s[JOB.WINDOW] = job.window;
    new Float32Array(s.buffer, s.byteOffset + JOB.SCALE * 4, 1)[0] = job.scale;
    this.#dispatch(chunks * heads, threaded);
  }

  /**
   * Causal grouped-query attention of `sequences` sequences (default 1,
   * stored one after another) in one job (see run_attention in gemm.c): a
   * task per sequence, key/value head and span of the query rows (blocks of
   * `rows`, a multiple of {@link ATTENTION_ROW_MULTIPLE}, dealt round the
   * spans), each with `scratchBytes` of scratch from byte address `scratch`
   * on (one region per thread; see `attentionScratchBytes`).
   */
  attention(job: {
    q: number;
    k: number;
    v: number;
    out: number;
    sequences?: number;
    seq: number;
    kvLen: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    window: number;
    scale: number;
    rows: number;
    scratch: number;
    scratchBytes: number;
    /** Host addresses (see {@link hostAddress}) that replace q, k, v, out where given. */
    hosts?: { q?: bigint | null; k?: bigint | null; v?: bigint | null; out?: bigint | null };
  }): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    const { seq, kvLen, heads, kvHeads, headDim: d, rows, sequences = 1 } = job;
    if (seq === 0 || heads === 0 || sequences === 0) return;
    // About 4·kvLen·d flops per query row (two products), half of them causal.
    const threaded = this.#workers.length > 0 &&
      2 * sequences * heads * seq * kvLen * d >= THREADED_MIN_FLOPS;
    // Each task packs its key/value head's keys once for all its blocks and
    // heads; spans split a head's blocks only where the heads alone would
    // leave threads idle (about four tasks a thread).
    const nblocks = Math.ceil(seq / rows);
    const spans = threaded
      ? Math.min(nblocks, Math.ceil((4 * this.threads) / (sequences * kvHeads)))
      : 1;
    const ntasks = sequences * kvHeads * spans;
    if (ntasks > MAX_TASKS || rows % ATTENTION_ROW_MULTIPLE !== 0) {
      throw new CpuKernelError(
        `CPU kernels: attention of ${heads} heads in blocks of ${rows} rows does not fit one job`,
      );
    }
    const s = this.#job;
    s[JOB.OP] = 6;
    s[JOB.PACKED] = 0;
    s[JOB.M] = seq;
    s[JOB.N] = kvLen;
    s[JOB.K] = d;
    s[JOB.NC] = rows;
    s[JOB.NSTRIPES] = spans;
    s[JOB.A] = job.q;
    s[JOB.A_RS] = heads * d;
    s[JOB.B] = job.k;
    s[JOB.B_RS] = kvHeads * d;
    s[JOB.V] = job.v;
    s[JOB.C] = job.out;
    s[JOB.LDC] = heads * d;
    s[JOB.A_BS] = seq * heads * d;
    s[JOB.B_BS] = kvLen * kvHeads * d;
    s[JOB.C_BS] = seq * heads * d;
    s[JOB.B_GROUP] = heads / kvHeads;
    s[JOB.CAUSAL_OFFSET] = kvLen - seq;
    s[JOB.WINDOW] = job.window;
    new Float32Array(s.buffer, s.byteOffset + JOB.SCALE * 4, 1)[0] = job.scale;
    s[JOB.SCRATCH] = job.scratch;
    s[JOB.SCRATCH_STRIDE] = job.scratchBytes;
    const { hosts = {} } = job;
    setAddress(s, JOB.P0, JOB.J0, hosts.q ?? 0n);
    setAddress(s, JOB.J1, JOB.GROUP, hosts.k ?? 0n);
    setAddress(s, JOB.Q_SCALE, JOB.Q_ZERO, hosts.v ?? 0n);
    setAddress(s, JOB.Q_SLOT, JOB.Q_ROW_DIV, hosts.out ?? 0n);
    this.#dispatch(ntasks, threaded);
  }

  /** Publishes the job written into the block, runs it with the pool, waits for every task. */
  /** Writes the fields a plain and a packed product share (C (+)= A·B: shape, A, C); returns the job slots. */
  #writeProduct(
    job: Pick<
      PackedJob,
      "m" | "n" | "k" | "a" | "aRowStride" | "aColStride" | "c" | "ldc" | "accumulate"
    >,
  ): Int32Array {
    const s = this.#job;
    s[JOB.OP] = 0;
    s[JOB.M] = job.m;
    s[JOB.N] = job.n;
    s[JOB.K] = job.k;
    s[JOB.A] = job.a;
    s[JOB.A_RS] = job.aRowStride;
    s[JOB.A_CS] = job.aColStride;
    s[JOB.C] = job.c;
    s[JOB.LDC] = job.ldc;
    s[JOB.ACCUMULATE] = job.accumulate ? 1 : 0;
    return s;
  }

  #dispatch(ntasks: number, threaded: boolean): void {
    const s = this.#job;
    const gen = this.#gen = (this.#gen + 1) & 0x7fff;
    s[JOB.NTASKS] = ntasks;
    Atomics.store(s, JOB.FAILED, 0);
    Atomics.store(s, JOB.DONE, 0);
    Atomics.store(s, JOB.CLAIM, gen << 16); // publishes the job
    try {
      if (threaded) {
        Atomics.add(s, JOB.WAKE, 1);
        Atomics.notify(s, JOB.WAKE);
      }
      if (this.#native) this.#native.run(this.#base, JOB_ADDRESS, gen, 0);
      else this.#kernels.gemm_run(JOB_ADDRESS, gen, 0);
      for (;;) {
        const done = Atomics.load(s, JOB.DONE);
        if (done >= ntasks) break;
        if (Atomics.load(s, JOB.FAILED) === 1) {
          throw new CpuKernelError("CPU kernels: a worker thread failed (see its message above)");
        }
        Atomics.wait(s, JOB.DONE, done, 1000);
      }
      if (Atomics.load(s, JOB.FAILED) === UNKNOWN_OP) {
        throw new CpuKernelError(
          `CPU kernels: the loaded kernel binary does not know op ${s[JOB.OP]}; it is older ` +
            "than this TypeScript (rebuild with `deno task build-wasm`)",
        );
      }
    } finally {
      // Closed before the caller writes the next job's fields and NTASKS: a
      // worker still inside gemm_run for this generation (woken late, or
      // preempted between reading CLAIM and its compare-and-swap) then finds
      // no task, whatever NTASKS the next job stores before it publishes.
      Atomics.store(s, JOB.CLAIM, (gen << 16) | CLOSED);
    }
  }

  /**
   * One GPTQ column block on an integer grid (see run_column_block in
   * gemm.c), every operand at a byte address: rows are shared out among the
   * threads, NC rows a task.
   */
  columnBlock(job: ColumnBlockJob): void {
    const { rows, count } = job;
    if (count === 0) return;
    // About count² / 2 float64 updates per row.
    this.#runChunked(job.mask ? 24 : 4, rows, count * count, 1, (s) => {
      s[JOB.A] = job.w;
      s[JOB.B] = job.u;
      s[JOB.C] = job.err;
      s[JOB.TERMS] = job.terms;
      s[JOB.M] = rows;
      s[JOB.K] = count;
      s[JOB.Q_SCALE] = job.scale;
      s[JOB.Q_ZERO] = job.zero;
      s[JOB.Q_SLOT] = job.slot;
      s[JOB.Q_ROW_DIV] = job.rowDiv;
      s[JOB.Q_SLOT_STRIDE] = job.slotRowStride;
      s[JOB.V] = job.mask ?? 0;
      const bounds = new Float32Array(s.buffer, s.byteOffset + JOB.Q_MIN * 4, 2);
      bounds[0] = job.qmin;
      bounds[1] = job.qmax;
    });
  }

  /**
   * One SparseGPT column block with N:M pruning (see run_prune_block in
   * gemm.c): as {@link columnBlock}, with `n` of every `m` columns pruned
   * per row and the weight's uint8 keep mask at `keep` (0 for none).
   */
  pruneBlock(job: {
    rows: number;
    count: number;
    w: number;
    u: number;
    err: number;
    terms: number;
    n: number;
    m: number;
    keep: number;
  }): void {
    const { rows, count } = job;
    if (count === 0) return;
    this.#runChunked(25, rows, count * count, 1, (s) => {
      s[JOB.A] = job.w;
      s[JOB.B] = job.u;
      s[JOB.C] = job.err;
      s[JOB.TERMS] = job.terms;
      s[JOB.M] = rows;
      s[JOB.K] = count;
      s[JOB.Q_MIN] = job.n;
      s[JOB.Q_MAX] = job.m;
      s[JOB.V] = job.keep;
    });
  }

  /**
   * The Cholesky factor of the [b, b] block at byte address `a`, in place
   * (see run_cholesky_block in gemm.c), on the calling thread; the int32 at
   * `status` becomes 1 when the block is not positive definite.
   */
  choleskyBlock(job: { a: number; b: number; status: number }): void {
    this.#runChunked(20, 1, 0, 1, (s) => {
      s[JOB.A] = job.a;
      s[JOB.M] = job.b;
      s[JOB.TERMS] = job.status;
    });
  }

  /**
   * X = L⁻¹ of the lower-triangular [b, b] block at byte address `l` into
   * `x` (float32), with [b, b] float64 scratch at `work` (see
   * run_lower_inverse_block in gemm.c), columns shared by the threads; the
   * int32 at `status` becomes 1 when a value is not finite.
   */
  lowerInverseBlock(job: { l: number; work: number; x: number; b: number; status: number }): void {
    const { b } = job;
    if (b === 0) return;
    new Int32Array(this.memory.buffer, job.status, 1)[0] = 0;
    // About (b − c)² / 2 multiply-adds for column c; tasks of whole groups of 8 columns.
    this.#runChunked(21, b, (b * b) / 3, 8, (s) => {
      s[JOB.A] = job.l;
      s[JOB.B] = job.work;
      s[JOB.C] = job.x;
      s[JOB.M] = b;
      s[JOB.LDC] = lowerInverseStride(b);
      s[JOB.TERMS] = job.status;
    });
  }

  /**
   * The float64 sum of `n` float64 values at byte address `v`, added in
   * order (see run_ordered_sum in gemm.c), stored as a float64 at `out`.
   */
  orderedSum(job: { v: number; n: number; out: number }): void {
    this.#runChunked(22, 1, 0, 1, (s) => {
      s[JOB.A] = job.v;
      s[JOB.M] = job.n;
      s[JOB.C] = job.out;
    });
  }

  /**
   * The float64 at `acc` plus Σ a[i]·b[i] over `n` floats at byte addresses
   * `a` and `b`, added in order (see run_ordered_dot in gemm.c), stored back
   * at `acc`.
   */
  orderedDot(job: { a: number; b: number; n: number; acc: number }): void {
    this.#runChunked(23, 1, 0, 1, (s) => {
      s[JOB.A] = job.a;
      s[JOB.B] = job.b;
      s[JOB.M] = job.n;
      s[JOB.C] = job.acc;
    });
  }

  /**
   * y = x / sqrt(mean(x²) + eps) · w for `rows` rows of `cols` floats at
   * byte addresses x, w, y (see run_rmsnorm in gemm.c), rows shared by the threads.
   */
  rmsnorm(job: { x: number; w: number; y: number; rows: number; cols: number; eps: number }): void {
    const { rows, cols } = job;
    if (cols === 0) return;
    // About 5 operations per element, against the softmax's 20.
    this.#runChunked(5, rows, 5 * cols, 4, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.w;
      s[JOB.C] = job.y;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
      new Float64Array(s.buffer, s.byteOffset + JOB.EPS * 4, 1)[0] = job.eps;
    });
  }

  /**
   * {@link rmsnorm} of x [rows, cols] into y (may be x), both host arrays
   * the native threads read and write in place (run_rmsnorm_host in gemm.c;
   * same rows a task, same bits), w at byte address `w`: x is not copied in
   * nor y out. False, and nothing done, where those copies would not be
   * threaded either (see {@link copyIn}).
   */
  rmsnormHost(
    job: { x: Float32Array; w: number; y: Float32Array; rows: number; cols: number; eps: number },
  ): boolean {
    const { rows, cols } = job;
    const x = this.hostAddress(job.x);
    const y = x === null ? null : this.hostAddress(job.y);
    if (y === null) return false;
    this.#runChunked(58, rows, 5 * cols, 4, (s) => {
      setAddress(s, JOB.P0, JOB.J0, x!);
      s[JOB.B] = job.w;
      setAddress(s, JOB.J1, JOB.GROUP, y);
      s[JOB.M] = rows;
      s[JOB.N] = cols;
      new Float64Array(s.buffer, s.byteOffset + JOB.EPS * 4, 1)[0] = job.eps;
    });
    return true;
  }

  /**
   * Fast Walsh–Hadamard transform in place of `runs` runs of `n` floats at
   * byte address `x` (butterflies from span `stride` up, then × `scale`;
   * see run_fwht in gemm.c), runs shared by the threads; with `signs` (the
   * byte address of n factors, 0 for none) each position also × its factor,
   * first when `signsFirst`, else last.
   */
  walshHadamard(job: {
    x: number;
    runs: number;
    n: number;
    stride: number;
    scale: number;
    signs: number;
    signsFirst: boolean;
  }): void {
    const { runs, n, stride } = job;
    if (n === 0) return;
    // About log2(n / stride) additions per element.
    this.#runChunked(7, runs, n * Math.log2(n / stride), 1, (s) => {
      s[JOB.A] = job.x;
      s[JOB.M] = runs;
      s[JOB.N] = n;
      s[JOB.K] = stride;
      new Float64Array(s.buffer, s.byteOffset + JOB.FWHT_SCALE * 4, 1)[0] = job.scale;
      s[JOB.FWHT_SIGNS] = job.signs;
      s[JOB.FWHT_SIGNS_FIRST] = job.signsFirst ? 1 : 0;
    });
  }

  /**
   * FP8 E4M3 fake quantization (float32 ops, no zero point) of `rows` rows
   * of `cols` floats at byte address `x`, row r with the float32 at
   * `scale + 4r`, clamped to ±`qMax`, into `y` (see run_fake_quantize_fp8
   * in gemm.c), rows shared by the threads. Runs op 44
   * (run_fake_quantize_fp8_wide: the same bits, eight values at a time).
   */
  fakeQuantizeFp8(
    job: { x: number; scale: number; y: number; rows: number; cols: number; qMax: number },
  ): void {
    const { rows, cols } = job;
    if (cols === 0) return;
    const bound = new Float32Array([-job.qMax, job.qMax]);
    const bits = new Int32Array(bound.buffer);
    // About 12 operations per element (a division, the encoding, the decoding, a product).
    this.#runChunked(44, rows, 12 * cols, 1, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.scale;
      s[JOB.C] = job.y;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
      s[JOB.Q_MIN] = bits[0];
      s[JOB.Q_MAX] = bits[1];
    });
  }

  /**
   * Integer-grid fake quantization of `rows` rows of `cols` floats at byte
   * address `x` into `y`, row r with the float32 scale at `scale` + 4r and,
   * when `zero` is not 0, the zero point at `zero` + 4r, clamped to
   * [qMin, qMax] (see run_fake_quantize_int in gemm.c), rows shared by the threads.
   */
  fakeQuantizeInt(
    job: {
      x: number;
      scale: number;
      zero: number;
      y: number;
      rows: number;
      cols: number;
      qMin: number;
      qMax: number;
    },
  ): void {
    const { rows, cols } = job;
    if (cols === 0) return;
    const bound = new Float32Array([job.qMin, job.qMax]);
    const bits = new Int32Array(bound.buffer);
    // About 8 operations per element (a division, the clamp, the rounding, a product).
    this.#runChunked(40, rows, 8 * cols, 1, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.scale;
      s[JOB.C] = job.y;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
      s[JOB.Q_ZERO] = job.zero;
      s[JOB.Q_MIN] = bits[0];
      s[JOB.Q_MAX] = bits[1];
    });
  }

  /**
   * The minimum and maximum of each of `rows` rows of `cols` ≥ 1 floats at
   * byte address `x`, as Math.min and Math.max fold them, into `min` and
   * `max` (see run_row_min_max in gemm.c), rows shared by the threads.
   */
  rowMinMax(job: { x: number; min: number; max: number; rows: number; cols: number }): void {
    const { rows, cols } = job;
    if (cols === 0) return;
    // About 5 operations per element (the key, a NaN test, a min, a max).
    this.#runChunked(35, rows, 5 * cols, 1, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.min;
      s[JOB.C] = job.max;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
    });
  }

  /**
   * Each of `rows` rows' sum of squared differences, Σ_c (a − b)² (Σ_c a²
   * when `b` is null), float32 differences and squares summed in float64 in
   * column order, into the floats at byte address `y` (see
   * run_row_squared_error in gemm.c), rows shared by the threads. `a` and
   * `b` are byte addresses of `rows` × `cols` floats in the memory, or host
   * arrays at `aHost` and `bHost` (see {@link hostAddress}) the native
   * threads read in place.
   */
  rowSquaredError(job: {
    a: number;
    b: number | null;
    y: number;
    rows: number;
    cols: number;
    aHost?: bigint | null;
    bHost?: bigint | null;
  }): void {
    const { rows, cols } = job;
    if (cols === 0) return;
    // Memory-bound, as add: a few operations per element; eight rows run side by side.
    this.#runChunked(41, rows, 4 * cols, 8, (s) => {
      s[JOB.A] = job.a;
      s[JOB.B] = job.b ?? 0;
      s[JOB.C] = job.y;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
      s[JOB.K] = job.b === null ? 0 : 1;
      setAddress(s, JOB.P0, JOB.J0, job.aHost ?? 0n);
      setAddress(s, JOB.J1, JOB.GROUP, job.bHost ?? 0n);
    });
  }

  /**
   * The minimum and maximum of each of the `cols` columns of `rows` ≥ 1
   * rows at byte address `x`, as Math.min and Math.max fold them, into `min`
   * and `max` (see run_column_min_max in gemm.c), columns shared by the threads.
   */
  columnMinMax(job: { x: number; min: number; max: number; rows: number; cols: number }): void {
    const { rows, cols } = job;
    if (rows === 0) return;
    // Strips of whole cache lines (16 floats) of every row.
    this.#runChunked(36, cols, 6 * rows, 16, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.min;
      s[JOB.C] = job.max;
      s[JOB.M] = rows;
      s[JOB.N] = cols;
    });
  }

  /**
   * Runs a row-wise job (OP `op`) over `units` rows or elements in chunks
   * of a multiple of `quantum`, four per thread when the work (`perUnit`
   * operations a unit) is worth threading; `fields` writes the op's own slots.
   */
  #runChunked(
    op: number,
    units: number,
    perUnit: number,
    quantum: number,
    fields: (s: Int32Array) => void,
  ): void {
    if (this.#closed) throw new CpuKernelError("CPU kernels: runtime is closed");
    if (units === 0) return;
    const threaded = this.#workers.length > 0 && perUnit * units >= THREADED_MIN_FLOPS;
    const chunk = align(threaded ? Math.ceil(units / (4 * this.threads)) : units, quantum);
    const ntasks = Math.ceil(units / chunk);
    const s = this.#job;
    s[JOB.OP] = op;
    s[JOB.PACKED] = 0;
    s[JOB.NC] = chunk;
    s[JOB.NSTRIPES] = ntasks;
    // Each thread's own scratch region (the column blocks' lanes, the inverse's columns).
    s[JOB.SCRATCH] = SCRATCH_ADDRESS;
    s[JOB.SCRATCH_STRIDE] = SCRATCH_STRIDE;
    fields(s);
    this.#dispatch(ntasks, threaded);
  }

  /** Column stripes that worker threads (not the calling thread) have run so far. */
  get workerTasks(): number {
    return Atomics.load(this.#job, JOB.WORKER_TASKS);
  }

  /** y = silu(g) · u for n floats at byte addresses g, u, y, in chunks the threads share. */
  siluMul(g: number, u: number, y: number, n: number): void {
    // About 20 operations per element, as the softmax's; chunks of whole vectors.
    this.#runChunked(3, n, 20, 4, (s) => {
      s[JOB.A] = g;
      s[JOB.B] = u;
      s[JOB.C] = y;
      s[JOB.N] = n;
    });
  }

  /** y = a + b (float32) for n floats at byte addresses a, b, y (y may be a or b), in chunks the threads share. */
  add(a: number, b: number, y: number, n: number): void {
    // Memory-bound: weighed as a few operations per element, threaded from about a million.
    this.#runChunked(26, n, 4, 4, (s) => {
      s[JOB.A] = a;
      s[JOB.B] = b;
      s[JOB.C] = y;
      s[JOB.N] = n;
    });
  }

  /**
   * RoPE (rotate_half) in place on `rows` rows of `n` floats at byte address
   * x (heads of headDim floats), row r at position (first + r) mod seqLen of
   * the cos and sin tables ([seqLen, headDim / 2] at byte addresses cos, sin);
   * see run_rope in gemm.c. Rows shared by the threads.
   */
  rope(job: {
    x: number;
    rows: number;
    n: number;
    headDim: number;
    first: number;
    seqLen: number;
    cos: number;
    sin: number;
    /** x in a host array at this address instead (see {@link hostAddress}). */
    xHost?: bigint | null;
  }): void {
    const { rows, n } = job;
    if (n === 0) return;
    // Six operations a pair of floats.
    this.#runChunked(27, rows, 3 * n, 1, (s) => {
      s[JOB.A] = job.x;
      s[JOB.B] = job.cos;
      s[JOB.V] = job.sin;
      s[JOB.M] = rows;
      s[JOB.N] = n;
      s[JOB.K] = job.headDim;
      s[JOB.P0] = job.first;
      s[JOB.J0] = job.seqLen;
      setAddress(s, JOB.Q_SCALE, JOB.Q_ZERO, job.xHost ?? 0n);
    });
  }

  /**
   * Copies `src` into the memory at byte address `at`. In the native build a
   * large copy is shared by the threads (run_copy in gemm.c reads the host
   * array through its address); otherwise the calling thread copies.
   */
  copyIn(src: Float32Array, at: number): void {
    if (!this.#hostCopy(src, at, 1)) this.f32(at, src.length).set(src);
  }

  /** Copies `dst.length` floats from byte address `at` of the memory into `dst` (see {@link copyIn}). */
  copyOut(at: number, dst: Float32Array): void {
    if (!this.#hostCopy(dst, at, 0)) dst.set(this.f32(at, dst.length));
  }

  /** A threaded native copy between `host` and `at` (into the memory when `inward`); false when not worth it. */
  #hostCopy(host: Float32Array, at: number, inward: 0 | 1): boolean {
    const address = this.hostAddress(host);
    if (address === null) return false;
    const n = host.length;
    // Whole cache lines a task; weighed so that every copy this large is threaded.
    this.#runChunked(28, n, THREADED_MIN_FLOPS / HOST_COPY_MIN, 16, (s) => {
      setAddress(s, JOB.A, JOB.B, address);
      s[JOB.C] = at;
      s[JOB.N] = n;
      s[JOB.K] = inward;
    });
    return true;
  }

  /**
   * y = residual + the n = y.length floats at byte address `c`, with
   * {@link add}'s bits, written straight into the host array y (which may
   * be residual) by the native threads: the residual is not copied in nor
   * the sum copied out (run_add_host in gemm.c). False, and nothing done,
   * where those copies would not be threaded either (see {@link copyIn}).
   */
  addToHost(residual: Float32Array, c: number, y: Float32Array): boolean {
    const r = this.hostAddress(residual);
    const out = r === null || residual.length !== y.length ? null : this.hostAddress(y);
    if (out === null) return false;
    // Threaded as the copies it replaces are.
    this.#runChunked(56, y.length, THREADED_MIN_FLOPS / HOST_COPY_MIN, 16, (s) => {
      setAddress(s, JOB.A, JOB.B, r!);
      s[JOB.C] = c;
      setAddress(s, JOB.P0, JOB.J0, out);
      s[JOB.N] = y.length;
    });
    return true;
  }

  /**
   * y = silu(g) · u for the n = y.length floats at byte addresses g, u, with
   * {@link siluMul}'s bits (the same chunks), written straight into the host
   * array y by the native threads instead of into the memory and copied out
   * (run_silu_mul_host in gemm.c). False, and nothing done, where that copy
   * would not be threaded (see {@link copyOut}).
   */
  siluMulToHost(g: number, u: number, y: Float32Array): boolean {
    const out = this.hostAddress(y);
    if (out === null) return false;
    this.#runChunked(57, y.length, 20, 4, (s) => {
      s[JOB.A] = g;
      s[JOB.B] = u;
      setAddress(s, JOB.P0, JOB.J0, out);
      s[JOB.N] = y.length;
    });
    return true;
  }

  /**
   * The address of a host array the native threads may read and write
   * directly (during the calls it is given to), or null: not the native build, no worker threads, or fewer
   * than HOST_COPY_MIN floats (V8 may keep the smallest arrays on its
   * moving heap; arrays this large have fixed backing stores).
   */
  hostAddress(host: Float32Array): bigint | null {
    if (this.#native === null || this.#workers.length === 0 || host.length < HOST_COPY_MIN) {
      return null;
    }
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(host)));
  }

  /** Copies the upper triangle of the n×n matrix at `h` onto its lower one. */
  mirrorUpper(h: number, n: number): void {
    this.#kernels.mirror_upper(h, n);
  }

  /** Stops the workers; the runtime cannot be used afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#job, JOB.STOP, 1);
    Atomics.add(this.#job, JOB.WAKE, 1);
    Atomics.notify(this.#job, JOB.WAKE);
    for (const w of this.#workers) w.terminate();
    this.#native?.close();
  }
}

/** Writes a 64-bit host address into job slots `lo` (low half) and `hi`. */
function setAddress(s: Int32Array, lo: number, hi: number, address: bigint): void {
  s[lo] = Number(address & 0xffffffffn) | 0;
  s[hi] = Number(address >> 32n) | 0;
}

/** Rounds `x` up to a multiple of `to`. */
export function align(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}
