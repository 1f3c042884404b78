/**
 * Progress as `llmc oneshot` shows it: the tracker's fraction only grows
 * (over real event sequences of the data-free and the calibrated pipelines,
 * and over an independent run's passes), it carries rate, elapsed and ETA,
 * and `--progress json` prints nothing but JSON lines, ending with the
 * result or the error.
 */

import assert from "node:assert/strict";
import { STORIES, withTempDir } from "../oneshot/_helpers.ts";
import { SHARED_DIR } from "../_shared.ts";
import type { GraphEvent, ProgressEvent } from "../../src/graph/events.ts";
import { oneshot } from "../../src/oneshot.ts";
import { GPTQModifier } from "../../src/recipe/constructors.ts";
import { ProgressTracker } from "../../src/cli/progress_tracker.ts";
import { describeSnapshot, progressRenderer } from "../../src/cli/progress.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** Feeds events one simulated second apart; returns the snapshots. */
function track(events: readonly GraphEvent[]) {
  const t = new ProgressTracker(0);
  return events.map((e, i) => t.update(e, (i + 1) * 1000));
}

function assertForward(fractions: number[]): void {
  for (let i = 1; i < fractions.length; i++) {
    assert.ok(fractions[i] >= fractions[i - 1], `step ${i}: ${fractions[i - 1]} → ${fractions[i]}`);
  }
}

const progress = (
  layer: number | null,
  phase: ProgressEvent["phase"],
  samplesDone = 0,
  samples = 0,
  pass = 0,
  passes = 2,
): ProgressEvent => ({
  type: "progress",
  pass,
  passes,
  layer,
  layers: 2,
  phase,
  round: 0,
  samplesDone,
  samples,
});
const done = (layer: number | null): GraphEvent => ({
  type: "layer_done",
  layer,
  layers: 2,
  skipped: false,
  seconds: 1,
  bytesRead: 0,
});

Deno.test("the fraction never goes back: write-behind, lm_head last, two passes", () => {
  const events: GraphEvent[] = [
    progress(0, "calibrate", 0, 8), // every phase reports its start

    progress(0, "calibrate", 8, 8),
    progress(0, "compress"),
    progress(0, "propagate", 4, 8),
    progress(0, "write"),
    // The next layer starts before layer 0's write is reported done.
    progress(1, "calibrate", 0, 8),
    done(0),
    progress(1, "write"),
    done(1),
    // lm_head (layer null) after the layers: the raw position of "layer null" was 0 before.
    progress(null, "compress"),
    done(null),
    progress(0, "calibrate", 0, 8, 1, 2),
    progress(0, "calibrate", 8, 8, 1, 2),
    done(0),
    progress(1, "write", 0, 0, 1, 2),
    done(1),
    done(null),
  ];
  const snaps = track(events);
  // Pass 0 fills the first half only, so the second pass starts where it ended.
  const fractions = snaps.map((s) => s.fraction);
  assertForward(fractions);
  assert.ok(fractions[10] <= 0.5 + 1e-9 && fractions[10] > 0.45, `end of pass 0: ${fractions[10]}`);
  assert.equal(fractions.at(-1), 1);
  assert.equal(snaps.at(-1)!.eta, 0);
  // Inside a phase that counts samples the rate is samples/s over that phase.
  assert.equal(snaps[1].rateUnit, "samples/s");
  // 8 samples in the second since the phase started.
  assert.equal(snaps[1].rate, 8);
  assert.equal(snaps[1].phase, "calibrate");
  assert.equal(snaps[6].rateUnit, "layers/s");
  const text = describeSnapshot(snaps[1]);
  assert.match(text, /^\d+% 2\.0 s, ETA [\d.]+ s, 8\.00 samples\/s \(calibrate 1\.0 s\)$/);
  // Time per phase: the time between two events belongs to the earlier one's phase.
  const t = new ProgressTracker(0);
  t.update(progress(0, "calibrate", 0, 8), 0);
  t.update(progress(0, "calibrate", 8, 8), 3000);
  t.update(progress(0, "compress", 8, 8), 3500);
  t.update(progress(0, "propagate", 0, 8), 6000);
  t.update(progress(0, "propagate", 8, 8), 6500);
  t.update(progress(0, "write"), 7000);
  t.update(done(0), 7250);
  assert.deepEqual(
    Object.fromEntries(t.phaseSeconds(9000)),
    { calibrate: 3.5, compress: 2.5, propagate: 1, write: 0.25 },
  );
});

Deno.test("real runs: data-free and calibrated GPTQ event sequences only move forward", async () => {
  await withTempDir(async (dir) => {
    const datafree: GraphEvent[] = [];
    await oneshot({
      model: STORIES,
      scheme: "W8A16",
      ignore: ["lm_head"],
      outputDir: `${dir}/rtn`,
      onEvent: (e) => datafree.push(e),
      onWarning: () => {},
    });
    const calibrated: GraphEvent[] = [];
    await oneshot({
      model: STORIES,
      recipe: [GPTQModifier({ targets: "Linear", scheme: "W8A16", ignore: ["lm_head"] })],
      dataset: `${SHARED_DIR}data/tinystories_calib.txt`,
      numCalibrationSamples: 4,
      maxSeqLength: 32,
      outputDir: `${dir}/gptq`,
      onEvent: (e) => calibrated.push(e),
      onWarning: () => {},
    });
    for (const [name, events] of [["datafree", datafree], ["calibrated", calibrated]] as const) {
      const fractions = track(events).map((s) => s.fraction);
      assert.ok(events.some((e) => e.type === "layer_done"), name);
      assertForward(fractions);
      assert.equal(fractions.at(-1), 1, `${name} ends at ${fractions.at(-1)}`);
    }
    assert.ok(calibrated.some((e) => e.type === "progress" && e.phase === "calibrate"));
  });
});

async function cli(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli/main.ts", "oneshot", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

Deno.test("--progress json: every stderr line is JSON, ending with the result or the error", async () => {
  await withTempDir(async (dir) => {
    const args = ["--model", STORIES, "--scheme", "W8A16", "--ignore", "lm_head"];
    const ok = await cli([...args, "--output-dir", `${dir}/out`, "--progress", "json"]);
    // rc 134: the known WebGPU teardown abort after a completed run (see tests/run_tests.ts).
    assert.ok(ok.code === 0 || ok.code === 134, `rc ${ok.code}:\n${ok.stderr}`);
    const lines = ok.stderr.trim().split("\n").filter((l) => !/double free|free\(\)/.test(l));
    const records = lines.map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        throw new Error(`not a JSON line: ${l}\n${ok.stderr}`);
      }
    });
    const result = records.at(-1);
    assert.equal(result.type, "result");
    assert.match(result.message, /^wrote .*\/out \(datafree\): \d+ tensors/);
    assert.equal(result.pipeline, "datafree");
    assert.ok(result.tensor_count > 0);
    assert.ok(ok.stdout.includes(result.message), "the human line is still on stdout");
    const layerLines = records.filter((r) => r.type === "layer_done");
    assert.ok(layerLines.length > 0);
    assertForward(layerLines.map((r) => r.fraction));
    for (const r of layerLines) {
      assert.equal(typeof r.elapsed_s, "number");
      assert.ok(r.eta_s === null || typeof r.eta_s === "number");
      assert.equal(r.rate_unit, "layers/s");
    }
    assert.equal(layerLines.at(-1).fraction, 1);
    assert.ok(records.some((r) => r.type === "module_metric"), "data-free metrics are shown");

    // The same output again without --overwrite: a clear error, as one JSON line, status 1.
    const bad = await cli([...args, "--output-dir", `${dir}/out`, "--progress", "json"]);
    assert.equal(bad.code, 1, bad.stderr);
    const badLines = bad.stderr.trim().split("\n");
    const last = JSON.parse(badLines.at(-1)!);
    assert.equal(last.type, "error");
    assert.equal(typeof last.error, "string");
    assert.match(last.message, /out/);
    for (const l of badLines) JSON.parse(l);
  });
});

Deno.test("--progress none shows no result line; bar mode keeps errors for the caller", () => {
  const none = progressRenderer("none");
  assert.equal(none.error(new Error("x")), false);
  const lines: string[] = [];
  const error = console.error;
  console.error = (s: string) => lines.push(s);
  try {
    const json = progressRenderer("json", false, () => 0);
    assert.equal(json.error(new TypeError("bad")), true);
    json.result({ message: "wrote x", fields: { output_dir: "x" } });
  } finally {
    console.error = error;
  }
  assert.deepEqual(JSON.parse(lines[0]), { type: "error", error: "TypeError", message: "bad" });
  assert.deepEqual(JSON.parse(lines[1]), {
    type: "result",
    output_dir: "x",
    phase_seconds: {},
    message: "wrote x",
  });
});
