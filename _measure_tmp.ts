import { CpuEngine } from "./src/engine/cpu_engine.ts";
import { CompressedCheckpoint } from "./src/compress/compressed_checkpoint.ts";
import { perplexity } from "./src/data/perplexity.ts";
import { DecoderModel } from "./src/model/decoder_model.ts";
import { HfModel } from "./src/io/hf_model.ts";
import { oneshot } from "./src/oneshot.ts";
import { evaluationWindows, STORIES } from "./tests/quality/_quality.ts";
const CHANNEL = `      ignore: [lm_head]
      config_groups:
        group_0:
          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}
          targets: [Linear]
`;
const windows = await evaluationWindows();
const TOKENS = Int32Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 512);
const base = await DecoderModel.load(STORIES, new CpuEngine());
const orig = await base.forward(TOKENS); base.close();
for (const [label, mod, quant] of [
  ["R1+R2+R4 random-hadamard randomize, float", "SpinQuantModifier: {rotations: [R1, R2, R4], transform_type: random-hadamard, randomize: true}", false],
  ["QuIP randomize, float", "QuIPModifier: {randomize: true}", false],
  ["R1+R2+R4 random-hadamard randomize + RTN W4A16 channel", "SpinQuantModifier: {rotations: [R1, R2, R4], transform_type: random-hadamard, randomize: true}", true],
  ["QuIP randomize + RTN W4A16 channel", "QuIPModifier: {randomize: true}", true],
] as const) {
  const dir = await Deno.makeTempDir();
  const t0 = performance.now();
  // float: a W16 "quantization" is not possible, so float runs use an ignore-everything RTN? use the transform only
  const recipe = `quant_stage:\n  quant_modifiers:\n    ${mod}\n    QuantizationModifier:\n${quant ? CHANNEL : CHANNEL.replace("[lm_head]", "[lm_head, 're:.*']")}`;
  try {
    await oneshot({ model: STORIES, recipe, outputDir: `${dir}/out`, onWarning: () => {} });
  } catch (e) { console.log(label, "oneshot failed:", (e as Error).message); continue; }
  const secs = (performance.now() - t0) / 1000;
  const ck = await CompressedCheckpoint.open(`${dir}/out`);
  const m = await DecoderModel.load(ck, new CpuEngine());
  const logits = await m.forward(TOKENS);
  let d = 0, s = 0; for (let i = 0; i < orig.length; i++) { d = Math.max(d, Math.abs(logits[i]-orig[i])); s = Math.max(s, Math.abs(orig[i])); }
  const { ppl } = await perplexity(m, windows);
  m.close(); ck.close();
  const raw = await HfModel.open(`${dir}/out`);
  const perms = raw.tensorNames().filter((n) => n.endsWith(".perm"));
  console.log(`${label}: ppl ${ppl.toFixed(4)}, logits rel ${ (d/s).toExponential(2)}, perms ${perms.length} ${perms[0]} ${raw.info(perms[0]).dtype}, oneshot ${secs.toFixed(1)} s`);
  raw.close();
  await Deno.remove(dir, { recursive: true });
}
