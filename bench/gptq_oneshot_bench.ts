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
  },
});
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
