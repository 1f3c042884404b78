/**
 * Forward-pass throughput and memory of the layer-wise decoder:
 * `deno run -A bench/forward_bench.ts [--seq-len 256] [--reps 3]`.
 *
 * For stories260K and a synthetic ~100M-parameter Llama (12 layers, hidden
 * 768, intermediate 2048, vocab 32000, written to a temporary folder), a
 * fresh child process loads the model, warms the kernels up with one forward
 * pass, then times full forward passes (embed, every layer, final norm and
 * lm_head, logits read back) of one sequence and reports tokens/s and its
 * peak resident set size (VmHWM), overall and per phase: one more forward
 * pass restarts the peak (/proc/self/clear_refs) before the layer loop and
 * before the head, so the layer loop's peak shows what one layer at a time
 * costs and the head's what the streamed lm_head and the logits cost.
 * Each model runs in its own process so the peak belongs to that model
 * alone, and the parent's cost of generating the synthetic checkpoint does
 * not count. On a software adapter GPU buffers live in host memory, so they
 * count in RSS too. The runtime's buffer pool keeps released buffers (up to
 * 512 MiB) for reuse; the phase peaks are measured after emptying it and
 * after a garbage collection (the child runs with `--expose-gc`), so host
 * arrays left over from earlier passes do not count in a later phase.
 *
 * Prints a table, then one JSON line.
 *
 * @module
 */

import { WebGpuEngine } from "../src/engine/webgpu_engine.ts";
import { parseArgs } from "node:util";
import { storagePool } from "../src/gpu/buffer_pool.ts";
import { getGpu, type Gpu } from "../src/gpu/device.ts";
import { HfModel } from "../src/io/hf_model.ts";
import { layerTensorShapes } from "../src/model/layer_tensors.ts";
import { DecoderModel } from "../src/model/decoder_model.ts";
import { writeSyntheticModel } from "../src/model/synthetic_model.ts";

const SHARED = new URL("../../shared/", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

interface ChildResult {
  model: string;
  params: number;
  layerBytes: number;
  embeddingBytes: number;
  totalBytes: number;
  seqLen: number;
  msPerForward: number;
  tokensPerSecond: number;
  baselineRssBytes: number;
  /** VmHWM over the whole run. */
  peakRssBytes: number;
  /** VmHWM while running the decoder layers only (after embed, before head). */
  layersPeakRssBytes: number;
  /** VmHWM while running final norm + lm_head and reading the logits. */
  headPeakRssBytes: number;
  adapter: string;
}

/**
 * Empties the runtime's buffer pool (which keeps released buffers for reuse)
 * and restarts VmHWM at the current RSS (Linux: write 5 to
 * /proc/self/clear_refs), so the next peak shows what the next phase needs.
 */
async function resetPeakRss(gpu: Gpu): Promise<boolean> {
  collectGarbage();
  storagePool(gpu).trim();
  gpu.device.queue.submit([]);
  await gpu.device.queue.onSubmittedWorkDone();
  try {
    Deno.writeTextFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs V8's garbage collector when the child was started with
 * `--expose-gc` (it is): host arrays of earlier passes (logits read back,
 * uploaded weights of a source that does not free them) would otherwise sit
 * in the heap until some later collection and count in whichever peak comes
 * next.
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function procStatus(field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync("/proc/self/status"),
  );
  return m ? Number(m[1]) * 1024 : NaN;
}

async function child(
  dir: string,
  name: string,
  seqLen: number,
  reps: number,
): Promise<ChildResult> {
  const gpu = await getGpu();
  const hf = await HfModel.open(dir);
  const model = await DecoderModel.load(hf, await WebGpuEngine.create(gpu, [hf.config.headDim]));
  const config = hf.config;
  let layerParams = 0;
  for (const shape of layerTensorShapes(config, 0).values()) {
    layerParams += shape.reduce((a, b) => a * b, 1);
  }
  const embedParams = config.vocabSize * config.hiddenSize;
  const params = layerParams * config.numHiddenLayers +
    embedParams * (config.tieWordEmbeddings ? 1 : 2) +
    config.hiddenSize;
  const baseline = procStatus("VmRSS");

  const ids = Int32Array.from({ length: seqLen }, (_, i) => (i * 7919 + 1) % config.vocabSize);
  await model.forward(ids); // compiles every pipeline
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    collectGarbage();
    const t0 = performance.now();
    await model.forward(ids);
    times.push(performance.now() - t0);
  }
  const peak = procStatus("VmHWM");

  // Once more, phase by phase, with the peak restarted between phases.
  let hidden = await model.embed(ids, 1, seqLen);
  await model.idle();
  const canReset = await resetPeakRss(gpu);
  for (let k = 0; k < config.numHiddenLayers; k++) {
    const next = await model.runLayer(k, hidden);
    hidden.destroy();
    hidden = next;
  }
  await model.idle();
  const layersPeak = canReset ? procStatus("VmHWM") : NaN;
  await resetPeakRss(gpu);
  await model.logits(hidden);
  const headPeak = canReset ? procStatus("VmHWM") : NaN;
  hidden.destroy();
  model.close();
  hf.close();
  const ms = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
  return {
    model: name,
    params,
    layerBytes: layerParams * 4,
    embeddingBytes: embedParams * 4,
    totalBytes: params * 4,
    seqLen,
    msPerForward: ms,
    tokensPerSecond: seqLen / (ms / 1000),
    baselineRssBytes: baseline,
    peakRssBytes: peak,
    layersPeakRssBytes: layersPeak,
    headPeakRssBytes: headPeak,
    adapter: gpu.adapterName,
  };
}

async function runChild(
  dir: string,
  name: string,
  seqLen: number,
  reps: number,
): Promise<ChildResult> {
  const self = new URL(import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      "--config",
      CONFIG,
      self,
      "--child",
      dir,
      "--name",
      name,
      "--seq-len",
      String(seqLen),
      "--reps",
      String(reps),
    ],
    stdout: "piped",
    stderr: "inherit",
    // A fixed mmap threshold stops glibc from raising it after large frees, so
    // freed GPU buffers (host memory on a software adapter) leave the RSS
    // instead of lingering in the heap and hiding what each phase needs.
    env: { MALLOC_MMAP_THRESHOLD_: "131072" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.trim().split("\n").findLast((l) => l.startsWith("{"));
  if (!line) throw new Error(`bench child for ${name} failed (exit ${out.code}):\n${text}`);
  return JSON.parse(line);
}

const mib = (n: number) => (n / 2 ** 20).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      child: { type: "string" },
      name: { type: "string" },
      "seq-len": { type: "string", default: "256" },
      reps: { type: "string", default: "3" },
    },
    strict: true,
  });
  const seqLen = Number(values["seq-len"]);
  const reps = Number(values.reps);
  if (values.child) {
    console.log(
      JSON.stringify(await child(values.child, values.name ?? values.child, seqLen, reps)),
    );
    return;
  }

  const results: ChildResult[] = [];
  results.push(await runChild(`${SHARED}models/stories260K`, "stories260K", seqLen, reps));
  console.error("writing the synthetic ~100M-parameter Llama …");
  const synthetic = await writeSyntheticModel({
    modelType: "llama",
    hidden: 768,
    layers: 12,
    heads: 12,
    kvHeads: 12,
    intermediate: 2048,
    vocab: 32000,
    tied: true,
    maxPositions: 2048,
    seed: 100,
  });
  try {
    results.push(await runChild(synthetic.dir, "synthetic-llama-100M", seqLen, reps));
  } finally {
    await synthetic.remove();
  }

  console.log(`forward pass, one sequence of ${seqLen} tokens, f32, on ${results[0].adapter}`);
  console.log(
    "| model | params | one layer MiB | embedding MiB | whole model MiB | ms / forward | tokens/s " +
      "| RSS after load MiB | peak RSS MiB | peak in layers MiB | peak in head MiB |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of results) {
    console.log(
      `| ${r.model} | ${(r.params / 1e6).toFixed(2)}M | ${mib(r.layerBytes)} | ${
        mib(r.embeddingBytes)
      } | ` +
        `${mib(r.totalBytes)} | ${r.msPerForward.toFixed(0)} | ${r.tokensPerSecond.toFixed(0)} | ` +
        `${mib(r.baselineRssBytes)} | ${mib(r.peakRssBytes)} | ${mib(r.layersPeakRssBytes)} | ` +
        `${mib(r.headPeakRssBytes)} |`,
    );
  }
  console.log(JSON.stringify({ bench: "forward", seqLen, results }));
}

await main();
