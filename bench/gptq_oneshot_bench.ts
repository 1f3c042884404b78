/**
 * Wall time and peak RSS of the whole stories260K W4A16 GPTQ oneshot
 * (channel-wise, 64 samples × 256 tokens of tinystories_calib.txt), measured
 * from process start: a child `deno run -A src/cli/main.ts oneshot ...`
 * runs under `/usr/bin/time -v` when present (its "Maximum resident set
 * size" is the child's VmHWM); otherwise the child's /proc/<pid>/status
 * VmHWM is polled while it runs. The run's own per-phase progress (JSON
 * lines on stderr) is kept to say where the time goes.
 *
 * ```sh
 * deno run -A bench/gptq_oneshot_bench.ts [--samples 64] [--seq-len 256] [--runs 1]
 * ```
 *
 * Prints a table and one JSON line. Targets (this project's 2-core llvmpipe
 * machine): < 3 s and < 400 MiB; the bench reports, it does not fail.
 *
 * `--profile` instead runs the oneshot once in this process and prints per
 * layer the submits and the device polls (distinct moments at which
 * `onSubmittedWorkDone` / `mapAsync` promises resolved: promises awaited
 * together come back in one poll, about 11 ms each on llvmpipe), and the
 * wall time per graph phase (a phase lasts until the next phase's first
 * progress event).
 *
 * @module
 */

import { parseArgs } from "node:util";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const SHARED = decodeURIComponent(new URL("../../shared/", import.meta.url).pathname);
const RECIPE = `quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: ["lm_head"]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: ["Linear"]
`;

/** One timed child run. */
interface Run {
  readonly wallS: number;
  readonly peakRssMiB: number;
  readonly rssSource: "time -v" | "proc";
  readonly code: number;
}

async function hasGnuTime(): Promise<boolean> {
  return await Deno.stat("/usr/bin/time").then(() => true, () => false);
}

async function runOnce(args: string[]): Promise<Run> {
  const deno = Deno.execPath();
  const gnu = await hasGnuTime();
  const cmd = gnu ? "/usr/bin/time" : deno;
  const cmdArgs = gnu ? ["-v", deno, ...args] : args;
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let peakKiB = 0;
  let polling = !gnu;
  const poll = (async () => {
    while (polling) {
      const s = await Deno.readTextFile(`/proc/${child.pid}/status`).catch(() => "");
      const m = /VmHWM:\s+(\d+) kB/.exec(s);
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const out = await child.output();
  const wallS = (performance.now() - t0) / 1000;
  polling = false;
  await poll;
  const err = new TextDecoder().decode(out.stderr);
  if (gnu) {
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
    if (m) peakKiB = Number(m[1]);
  }
  if (out.code !== 0) console.error(err.slice(-4000));
  return { wallS, peakRssMiB: peakKiB / 1024, rssSource: gnu ? "time -v" : "proc", code: out.code };
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    samples: { type: "string", default: "64" },
    "seq-len": { type: "string", default: "256" },
    runs: { type: "string", default: "1" },
    profile: { type: "boolean", default: false },
  },
});

/** Submits, and the moments at which awaited GPU work came back. */
interface Counts {
  submits: number;
  /** Resolution times of mapAsync / onSubmittedWorkDone promises, ms. */
  resolved: number[];
}

/**
 * Device polls among resolution times: promises that resolve within 1 ms
 * of each other came back in one poll of the device (each costs about
 * 11 ms on llvmpipe however little work is pending, and several promises
 * awaited together cost one).
 */
function polls(times: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < times.length; i++) if (i === 0 || times[i] - times[i - 1] > 1) n++;
  return n;
}

/** Wraps an async method so each call's resolution time is recorded. */
function recordResolution(proto: Record<string, unknown>, method: string, c: Counts): void {
  const original = proto[method] as (...a: unknown[]) => Promise<unknown>;
  proto[method] = function (this: unknown, ...a: unknown[]) {
    const p = original.apply(this, a);
    p.then(() => c.resolved.push(performance.now()), () => {});
    return p;
  };
}

/** One in-process run with submits and device polls counted per layer. */
async function profile(samples: number, seqLen: number, outDir: string): Promise<void> {
  const c: Counts = { submits: 0, resolved: [] };
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const queue = g.GPUQueue.prototype;
  const submit = queue.submit;
  queue.submit = function (this: unknown, ...a: unknown[]) {
    c.submits++;
    return submit.apply(this, a);
  };
  recordResolution(queue, "onSubmittedWorkDone", c);
  recordResolution(g.GPUBuffer.prototype, "mapAsync", c);
  const { oneshot } = await import("../src/oneshot.ts");
  const t0 = performance.now();
  let last = { submits: 0, resolved: 0 };
  let layerT = t0;
  let phase = "setup";
  let phaseT = t0;
  const phases = new Map<string, number>();
  console.log("layer | ms | submits | device polls");
  await oneshot({
    model: `${SHARED}models/stories260K`,
    recipe: RECIPE,
    outputDir: outDir,
    overwrite: true,
    dataset: `${SHARED}data/tinystories_calib.txt`,
    numCalibrationSamples: samples,
    maxSeqLength: seqLen,
    onWarning: () => {},
    onEvent: (e) => {
      const now = performance.now();
      if (e.type === "progress" && e.phase !== phase) {
        phases.set(phase, (phases.get(phase) ?? 0) + now - phaseT);
        [phase, phaseT] = [e.phase, now];
      }
      if (e.type !== "layer_done") return;
      console.log(
        `${e.layer ?? "outside"} | ${(now - layerT).toFixed(0)} | ${c.submits - last.submits} | ` +
          `${polls(c.resolved.slice(last.resolved))}`,
      );
      [last, layerT] = [{ submits: c.submits, resolved: c.resolved.length }, now];
    },
  });
  const end = performance.now();
  phases.set(phase, (phases.get(phase) ?? 0) + end - phaseT);
  console.log(
    `in-process ${(end - t0).toFixed(0)} ms; phases ms: ` +
      [...phases].map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ") +
      `; submits ${c.submits}, device polls ${polls(c.resolved)}; ` +
      `rss ${(Deno.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
}
if (values.profile) {
  const tmp = await Deno.makeTempDir({ prefix: "llmc-gptq-profile-" });
  try {
    await profile(Number(values.samples), Number(values["seq-len"]), `${tmp}/out`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  // Only the profile was asked for (not the timed child runs).
  Deno.exit(0);
}
const dir = await Deno.makeTempDir({ prefix: "llmc-gptq-bench-" });
try {
  await Deno.writeTextFile(`${dir}/recipe.yaml`, RECIPE);
  const args = [
    "run",
    "-A",
    "src/cli/main.ts",
    "oneshot",
    "--model",
    `${SHARED}models/stories260K`,
    "--recipe",
    `${dir}/recipe.yaml`,
    "--dataset",
    `${SHARED}data/tinystories_calib.txt`,
    "--num-calibration-samples",
    values.samples!,
    "--max-seq-length",
    values["seq-len"]!,
    "--output-dir",
    `${dir}/out`,
    "--overwrite",
    "--quiet",
  ];
  const runs: Run[] = [];
  for (let i = 0; i < Number(values.runs); i++) runs.push(await runOnce(args));
  console.log("run | wall s | peak RSS MiB | rss via | exit");
  runs.forEach((r, i) =>
    console.log(
      `${i} | ${r.wallS.toFixed(2)} | ${r.peakRssMiB.toFixed(0)} | ${r.rssSource} | ${r.code}`,
    )
  );
  const best = runs.reduce((a, b) => (b.wallS < a.wallS ? b : a));
  console.log(JSON.stringify({
    bench: "gptq_oneshot",
    model: "stories260K",
    scheme: "W4A16 channel GPTQ",
    samples: Number(values.samples),
    seqLen: Number(values["seq-len"]),
    wallS: best.wallS,
    peakRssMiB: Math.max(...runs.map((r) => r.peakRssMiB)),
    targets: { wallS: 3, peakRssMiB: 400 },
    runs,
  }));
  if (runs.some((r) => r.code !== 0)) Deno.exitCode = 1;
} finally {
  await Deno.remove(dir, { recursive: true });
}
