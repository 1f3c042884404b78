/**
 * AWQ on mixtures of experts: upstream's MoE mappings (post_attention_layernorm
 * → every expert's gate/up, each expert's up → its down) resolved in sparse
 * layers, with the router (and qwen2_moe's shared expert and its gate)
 * rescaled too so the layer computes the same; AWQ W4A16 runs on synthetic
 * Mixtral and Qwen3-MoE models and no parent's output error is worse than
 * round-to-nearest's.
 */

import type { GraphEvent, ModuleMetricEvent } from "../../src/graph/events.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { DecoderModel } from "../../src/model/decoder_model.ts";
import { readLayerTensors } from "../../src/model/layer_tensors.ts";
import { seededRandom } from "../../src/model/seeded_random.ts";
import {
  applySmoothing,
  AWQ_DEFAULT_MAPPINGS,
  AWQ_MIXTRAL_MAPPINGS,
  AWQ_QWEN_MOE_MAPPINGS,
  resolveLayerMappings,
} from "../../src/modifiers/smoothing/layer_mappings.ts";
import { oneshot } from "../../src/oneshot.ts";
import { assertClose } from "../model/_assert.ts";
import { assert, assertEquals } from "../oneshot/_assert.ts";
import { withTempDir } from "../oneshot/_helpers.ts";
import { testEngine } from "../_engines.ts";
import { CALIB, MOE_QUANT_SPECS, writeMoeModel } from "./_moe.ts";

async function configOf(dir: string, name: string) {
  const hf = await HfModel.open(await writeMoeModel(MOE_QUANT_SPECS[name], `${dir}/${name}`));
  const config = hf.config;
  hf.close();
  return config;
}

Deno.test("MoE AWQ mappings: the norm balances the router, every expert's gate/up and the shared expert; each up its own down", async () => {
  await withTempDir(async (dir) => {
    const qwen2 = await configOf(dir, "qwen2_moe");
    const notes: string[] = [];
    const maps = resolveLayerMappings(1, qwen2, AWQ_QWEN_MOE_MAPPINGS, "AWQ", (m) => notes.push(m));
    const p = "model.layers.1.mlp";
    const norm = maps.find((m) => m.smooth.endsWith("post_attention_layernorm"))!;
    assertEquals(norm.parent, "mlp");
    assertEquals(norm.parentName, p);
    assertEquals(norm.balance, [
      `${p}.gate`,
      `${p}.shared_expert.gate_proj`,
      `${p}.shared_expert.up_proj`,
      `${p}.shared_expert_gate`,
      ...[0, 1, 2, 3].flatMap((e) => [`${p}.experts.${e}.gate_proj`, `${p}.experts.${e}.up_proj`]),
    ]);
    const ups = maps.filter((m) => m.smooth.endsWith("up_proj"));
    assertEquals(ups.map((m) => [m.smooth, m.balance, m.parentName]), [
      [
        `${p}.shared_expert.up_proj`,
        [`${p}.shared_expert.down_proj`],
        `${p}.shared_expert.down_proj`,
      ],
      ...[0, 1, 2, 3].map((e) => [
        `${p}.experts.${e}.up_proj`,
        [`${p}.experts.${e}.down_proj`],
        `${p}.experts.${e}.down_proj`,
      ]),
    ]);
    assertEquals(notes.filter((n) => !/grouped-query/.test(n)), []);

    // Upstream 0.9's mappings (the dense defaults) leave the router and the shared expert's
    // gate out: they are added, with a warning naming them.
    const old: string[] = [];
    const dense = resolveLayerMappings(1, qwen2, AWQ_DEFAULT_MAPPINGS, "AWQ", (m) => old.push(m));
    assertEquals(dense.find((m) => m.smooth === norm.smooth)!.balance, norm.balance);
    assert(
      old.some((n) => n.includes(`${p}.gate,`) && n.includes(`${p}.shared_expert_gate`)),
      old.join("\n"),
    );

    const mixtral = await configOf(dir, "mixtral");
    const mx = resolveLayerMappings(0, mixtral, AWQ_MIXTRAL_MAPPINGS, "AWQ");
    const b = "model.layers.0.block_sparse_moe";
    assertEquals(mx.find((m) => m.smoothIsNorm && m.parent === "mlp")!.balance, [
      `${b}.gate`,
      ...[0, 1, 2, 3].flatMap((e) => [`${b}.experts.${e}.w1`, `${b}.experts.${e}.w3`]),
    ]);
    assertEquals(mx.find((m) => m.smoothIsNorm && m.parent === "mlp")!.parentName, b);
    assertEquals(
      mx.filter((m) => !m.smoothIsNorm && m.parent === "mlp").map((m) => [m.smooth, m.balance[0]]),
      [0, 1, 2, 3].map((e) => [`${b}.experts.${e}.w3`, `${b}.experts.${e}.w2`]),
    );
  });
});

Deno.test("MoE smoothing is exact: qwen2_moe's layer computes the same after the norm → router/experts/shared and up → down rescalings", async () => {
  await withTempDir(async (dir) => {
    const spec = MOE_QUANT_SPECS.qwen2_moe;
    const hf = await HfModel.open(await writeMoeModel(spec, `${dir}/model`));
    const model = await DecoderModel.load(hf, await testEngine("cpu"));
    try {
      const weights = await readLayerTensors(hf, 0);
      const maps = resolveLayerMappings(0, hf.config, AWQ_QWEN_MOE_MAPPINGS, "AWQ");
      const random = seededRandom(7);
      let smoothed: Map<string, Float32Array> = new Map(weights);
      for (const m of maps.filter((m) => m.parent === "mlp")) {
        // The balance layers' inputs: the hidden state, or a down projection's [hidden, inter] input.
        const n = m.smoothIsNorm
          ? spec.hidden
          : smoothed.get(`${m.balance[0]}.weight`)!.length / spec.hidden;
        const s = Float32Array.from({ length: n }, () => 0.25 + 2 * random());
        for (const [name, w] of applySmoothing(smoothed, m, s)) smoothed.set(name, w);
        smoothed = new Map(smoothed);
      }
      const rows = 24;
      const x = Float32Array.from({ length: rows * spec.hidden }, () => random() * 2 - 1);
      const out = async (w: ReadonlyMap<string, Float32Array>) => {
        const hidden = model.engine.upload(x, [rows, spec.hidden]);
        try {
          const y = await model.runLayer(0, hidden, { weights: w, sequences: 1 });
          try {
            return (await model.engine.read([y]))[0] as Float32Array;
          } finally {
            y.destroy();
          }
        } finally {
          hidden.destroy();
        }
      };
      const [before, after] = [await out(weights), await out(smoothed)];
      assertClose(after, before, 1e-4, "smoothed layer output");
      const router = "model.layers.0.mlp.gate.weight";
      assert(smoothed.get(router) !== weights.get(router), "the router was rescaled");
    } finally {
      model.close();
      hf.close();
    }
  });
});

for (const name of ["mixtral", "qwen3_moe"]) {
  Deno.test(`${name}: AWQ W4A16 smooths every expert; no parent's output error above RTN's`, async () => {
    await withTempDir(async (dir) => {
      const spec = MOE_QUANT_SPECS[name];
      const model = await writeMoeModel(spec, `${dir}/model`);
      const events: GraphEvent[] = [];
      await oneshot({
        model,
        recipe: `quant_stage:
  quant_modifiers:
    AWQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head, "re:.*mlp.gate$", "re:.*block_sparse_moe.gate$"]
      n_grid: 4
`,
        outputDir: `${dir}/out`,
        dataset: CALIB,
        numCalibrationSamples: 4,
        maxSeqLength: 32,
        engine: "cpu",
        onEvent: (e) => events.push(e),
        onWarning: () => {},
      });
      const parents = events.filter((e): e is ModuleMetricEvent =>
        e.type === "module_metric" && e.errorKind === "parent_output_mse"
      );
      const experts = spec.moe!.experts;
      // Per layer: input_layernorm → q/k/v, the norm → the sparse block, each expert's up → down
      // (v_proj → o_proj is skipped: grouped-query attention).
      assertEquals(parents.length, spec.layers * (2 + experts));
      const block = name === "mixtral" ? "block_sparse_moe" : "mlp";
      for (let k = 0; k < spec.layers; k++) {
        assert(parents.some((p) => p.module === `model.layers.${k}.${block}`), `layer ${k} block`);
        const downs = parents.filter((p) => p.layer === k && p.module.includes(".experts."));
        assertEquals(downs.length, experts);
      }
      for (const p of parents) {
        assert(Number.isFinite(p.outputError!) && p.outputError! > 0, p.module);
        assert(
          p.outputError! <= p.rtnOutputError!,
          `${p.module}: AWQ ${p.outputError} vs RTN ${p.rtnOutputError}`,
        );
      }
      // Some smoothing beat round-to-nearest somewhere (the search is not a no-op).
      assert(parents.some((p) => p.outputError! < p.rtnOutputError!), "AWQ never beat RTN");
    });
  });
}

Deno.test("qwen2_moe: SmoothQuant with the default mappings rescales the norm, the router and the shared expert's gate (kept dense), warning that it adds them", async () => {
  await withTempDir(async (dir) => {
    const model = await writeMoeModel(MOE_QUANT_SPECS.qwen2_moe, `${dir}/model`);
    const warnings: string[] = [];
    await oneshot({
      model,
      recipe: `quant_stage:
  quant_modifiers:
    SmoothQuantModifier: {smoothing_strength: 0.8}
    QuantizationModifier:
      targets: [Linear]
      scheme: W8A8
      ignore: [lm_head, "re:.*mlp.gate$", "re:.*shared_expert_gate$"]
`,
      outputDir: `${dir}/out`,
      dataset: CALIB,
      numCalibrationSamples: 4,
      maxSeqLength: 32,
      engine: "cpu",
      // onWarning gets every warning (graph events too), as the CLI shows them.
      onWarning: (m) => warnings.push(m),
    });
    // Said once for the run (every sparse layer would say the same), naming the first layer.
    const p = "model.layers.0.mlp";
    const rescaled = warnings.filter((w) => w.includes("; they are rescaled with it"));
    assertEquals(rescaled.length, 1, warnings.join("\n"));
    assert(
      rescaled[0].includes(`${p}.gate, ${p}.shared_expert_gate; they are rescaled`),
      rescaled[0],
    );
    const [src, out] = [await HfModel.open(model), await HfModel.open(`${dir}/out`)];
    try {
      // Every sparse layer is rescaled, not only the one the warning names.
      for (
        const name of [0, 1].flatMap((k) => [
          `model.layers.${k}.post_attention_layernorm.weight`,
          `model.layers.${k}.mlp.gate.weight`,
          `model.layers.${k}.mlp.shared_expert_gate.weight`,
        ])
      ) {
        const [a, b] = [await src.readF32(name), await out.readF32(name)];
        assertEquals(b.length, a.length, name);
        assert(a.some((v, i) => v !== b[i]), `${name} was not rescaled`);
      }
    } finally {
      src.close();
      out.close();
    }
  });
});

Deno.test("mixtral: SmoothQuant's inferred mappings are upstream 0.9's MixtralForCausalLM entry (attention only); the MLP side is left alone without a skip note", async () => {
  await withTempDir(async (dir) => {
    const model = await writeMoeModel(MOE_QUANT_SPECS.mixtral, `${dir}/model`);
    const warnings: string[] = [];
    await oneshot({
      model,
      recipe:
        "quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n",
      outputDir: `${dir}/out`,
      dataset: CALIB,
      numCalibrationSamples: 4,
      maxSeqLength: 32,
      engine: "cpu",
      onWarning: (m) => warnings.push(m),
    });
    // The registry gives no post_attention_layernorm mapping, so nothing is skipped.
    assertEquals(warnings.filter((w) => w.includes("post_attention_layernorm")), []);
    const recipe = await Deno.readTextFile(`${dir}/out/recipe.yaml`);
    assert(
      recipe.endsWith(
        `      mappings:
      - - ['re:.*q_proj', 're:.*k_proj', 're:.*v_proj']
        - re:.*input_layernorm
`,
      ),
      recipe,
    );
    const [src, out] = [await HfModel.open(model), await HfModel.open(`${dir}/out`)];
    try {
      const changed = async (name: string) => {
        const [a, b] = [await src.readF32(name), await out.readF32(name)];
        assertEquals(b.length, a.length, name);
        return a.some((v, i) => v !== b[i]);
      };
      for (const k of [0, 1]) {
        const p = `model.layers.${k}`;
        for (const name of ["input_layernorm", "self_attn.q_proj", "self_attn.v_proj"]) {
          assert(await changed(`${p}.${name}.weight`), `${p}.${name} was not smoothed`);
        }
        for (
          const name of [
            "post_attention_layernorm",
            "block_sparse_moe.gate",
            "block_sparse_moe.experts.0.w1",
            "block_sparse_moe.experts.3.w3",
          ]
        ) {
          assert(!(await changed(`${p}.${name}.weight`)), `${p}.${name} changed`);
        }
      }
    } finally {
      src.close();
      out.close();
    }
  });
});

Deno.test("qwen3_moe with a dense layer 0 (mlp_only_layers): AWQ's notes are said once per run, on the first layer each applies to", async () => {
  await withTempDir(async (dir) => {
    const spec = {
      ...MOE_QUANT_SPECS.qwen3_moe,
      layers: 3,
      moe: { ...MOE_QUANT_SPECS.qwen3_moe.moe!, mlpOnlyLayers: [0] },
    };
    const model = await writeMoeModel(spec, `${dir}/model`);
    const warnings: string[] = [];
    // Upstream 0.9's `_moe_default_mappings`: the router is not among the norm's balance layers.
    await oneshot({
      model,
      recipe: `quant_stage:
  quant_modifiers:
    AWQModifier:
      targets: [Linear]
      scheme: W4A16
      ignore: [lm_head, "re:.*mlp.gate$"]
      n_grid: 2
      mappings:
      - smooth_layer: "re:.*input_layernorm$"
        balance_layers: ["re:.*q_proj$", "re:.*k_proj$", "re:.*v_proj$"]
      - smooth_layer: "re:.*post_attention_layernorm$"
        balance_layers: ["re:.*mlp.experts.*.gate_proj$", "re:.*mlp.experts.*.up_proj$"]
`,
      outputDir: `${dir}/out`,
      dataset: CALIB,
      numCalibrationSamples: 2,
      maxSeqLength: 16,
      engine: "cpu",
      onWarning: (m) => warnings.push(m),
    });
    // The sparse layers' note (the router is rescaled too) first applies in layer 1.
    const router = warnings.filter((w) => w.includes("; they are rescaled with it"));
    assertEquals(router.length, 1, warnings.join("\n"));
    assert(router[0].includes("model.layers.1.post_attention_layernorm also feeds"), router[0]);
    assert(router[0].includes("model.layers.1.mlp.gate;"), router[0]);
    // The dense layer's own note (its MLP has no experts to balance) is said in layer 0.
    const dense = warnings.filter((w) => w.includes("no balance layers match"));
    assertEquals(dense.length, 1, warnings.join("\n"));
    assert(dense[0].includes("skipping model.layers.0.post_attention_layernorm"), dense[0]);
  });
});
