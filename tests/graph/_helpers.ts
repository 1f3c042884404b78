/**
 * Shared pieces of the graph tests: data paths, temporary folders, and
 * perplexity of a written checkpoint (weights decompressed, optionally with
 * its static input scales applied to every Linear's input, as vLLM serves
 * an FP8-static checkpoint).
 *
 * @module
 */

import { testEngine } from "../_engines.ts";
import { CompressedCheckpoint } from "../../src/compress/compressed_checkpoint.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { perplexity } from "../../src/data/perplexity.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { logSoftmaxNll } from "../../src/model/reference_ops.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import { fakeQuantizeRows } from "../../src/graph/activation_fake_quant.ts";
import { SHARED_DIR, tempDirRunner, type WithTempDir } from "../_shared.ts";

/** The tiny Llama every test runs on. */
export const STORIES = `${SHARED_DIR}models/stories260K`;
/** Calibration text (never evaluate on it). */
export const CALIB = `${SHARED_DIR}data/tinystories_calib.txt`;
/** Evaluation text (never calibrate on it). */
export const EVAL = `${SHARED_DIR}data/tinystories_eval.txt`;
/** The repository root. */
export const REPO_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** Runs `fn` with a fresh temporary folder (`llmc-graph-test-*`), removed afterwards. */
export const withTempDir: WithTempDir = tempDirRunner("llmc-graph-test-");

/** The project's evaluation windows (40 × 256, BOS first) of the eval text. */
export async function evaluationWindows(windows = 40, seqLen = 256): Promise<Int32Array[]> {
  return await loadEvaluationWindows({
    path: EVAL,
    tokenizer: await loadTokenizer(STORIES),
    seqLen,
    windows,
  });
}

/**
 * Perplexity of a checkpoint with its weights decompressed (the project's
 * convention for quantized checkpoints).
 *
 * @param dir a compressed-tensors (or dense) checkpoint folder
 * @param windows evaluation windows
 * @returns the perplexity
 */
export async function weightOnlyPerplexity(dir: string, windows: Int32Array[]): Promise<number> {
  const ckpt = await CompressedCheckpoint.open(dir);
  const model = await DecoderModel.load(ckpt, await testEngine("webgpu"));
  try {
    return (await perplexity(model, windows)).ppl;
  } finally {
    model.close();
    ckpt.close();
  }
}

/**
 * Perplexity of an FP8-static checkpoint with its weights decompressed and
 * every Linear input fake-quantized with its stored `input_scale`.
 *
 * @param dir the checkpoint folder
 * @param windows evaluation windows
 * @returns the perplexity
 */
export async function staticInputPerplexity(dir: string, windows: Int32Array[]): Promise<number> {
  const ckpt = await CompressedCheckpoint.open(dir);
  const raw = await HfModel.open(dir);
  const model = await DecoderModel.load(ckpt, await testEngine("webgpu"));
  const fp8 = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "in");
  try {
    const scales = new Map<string, Float32Array>();
    for (const name of raw.tensorNames()) {
      if (name.endsWith(".input_scale")) {
        scales.set(name.slice(0, -".input_scale".length), await raw.readF32(name));
      }
    }
    const seqLen = windows[0].length;
    let nll = 0;
    let tokens = 0;
    for (let w0 = 0; w0 < windows.length; w0 += 8) {
      const group = windows.slice(w0, w0 + 8);
      const ids = new Int32Array(group.length * seqLen);
      group.forEach((w, i) => ids.set(w, i * seqLen));
      let hidden = await model.embed(ids, group.length, seqLen);
      for (let k = 0; k < model.numLayers; k++) {
        const next = await model.runLayer(k, hidden, {
          transformLinearInput: (modules, x, engine) => {
            const s = scales.get(modules[0]);
            if (s === undefined) return x;
            return fakeQuantizeRows(engine, x, new Float32Array(x.shape[0]).fill(s[0]), null, fp8);
          },
        });
        hidden.destroy();
        hidden = next;
      }
      const logits = await model.head(hidden);
      hidden.destroy();
      const [host] = await model.engine.read([logits]) as Float32Array[];
      logits.destroy();
      const targets = new Int32Array(ids.length);
      for (let r = 0; r < ids.length; r++) targets[r] = r % seqLen === seqLen - 1 ? -1 : ids[r + 1];
      const per = logSoftmaxNll(host, targets, model.config.vocabSize);
      for (let r = 0; r < per.length; r++) {
        if (targets[r] >= 0) {
          nll += per[r];
          tokens++;
        }
      }
    }
    return Math.exp(nll / tokens);
  } finally {
    model.close();
    raw.close();
    ckpt.close();
  }
}
