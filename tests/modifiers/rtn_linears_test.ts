import { assert, assertEquals } from "../oneshot/_assert.ts";
import { decompressModule } from "../../src/compress/compress_module.ts";
import { layerFusedSets, rtnQuantizeLinears } from "../../src/modifiers/quantization/mod.ts";
import { globalScaleFor } from "../../src/quant/qparams.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import type { ModuleFormat } from "../../src/quant/compression_format.ts";

function seeded(seed: number, n: number, amp: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * amp;
  }
  return out;
}

Deno.test("NVFP4 global scales are fused to the minimum over q/k/v and gate/up", () => {
  const scheme = presetScheme("NVFP4A16", ["Linear"]);
  const names = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
  ];
  const amps = [1, 4, 2, 8, 0.5, 3];
  const linears = names.map((n, i) => ({
    name: `model.layers.7.${n}`,
    values: seeded(i + 1, 32 * 64, amps[i]),
    shape: [32, 64] as [number, number],
    scheme,
    format: "nvfp4-pack-quantized" as ModuleFormat,
    dtype: "F32" as const,
  }));
  const sets = layerFusedSets(7, "llama", () => true);
  assertEquals(sets, [
    [
      "model.layers.7.self_attn.q_proj",
      "model.layers.7.self_attn.k_proj",
      "model.layers.7.self_attn.v_proj",
    ],
    ["model.layers.7.mlp.gate_proj", "model.layers.7.mlp.up_proj"],
  ]);
  const q = rtnQuantizeLinears(linears, { fusedSets: sets });
  const g = q.map((r) => r.qparams.globalScale!);
  const own = linears.map((l) => {
    let amax = 0;
    for (const v of l.values) amax = Math.max(amax, Math.abs(v));
    return globalScaleFor(amax);
  });
  const qkv = Math.min(own[0], own[1], own[2]);
  assertEquals(g.slice(0, 3), [qkv, qkv, qkv]);
  assertEquals(g[3], own[3], "o_proj keeps its own");
  assertEquals(g.slice(4), [Math.min(own[4], own[5]), Math.min(own[4], own[5])]);
  const stored = q[1].tensors.find((t) => t.name.endsWith(".weight_global_scale"))!;
  assertEquals(new Float32Array(stored.data.slice().buffer)[0], Math.fround(qkv));
  // A set with a member that is not tensor_group is not fused.
  assertEquals(layerFusedSets(7, "qwen2", (n) => !n.endsWith("v_proj")).length, 1);
});

Deno.test("every format decompresses to the fake-quantized weight; the input is not modified", () => {
  const cases: [string, ModuleFormat, "F32" | "BF16" | "F16"][] = [
    ["W8A16", "pack-quantized", "BF16"],
    ["W4A16", "pack-quantized", "F32"],
    ["W4A16_ASYM", "pack-quantized", "F16"],
    ["FP8_DYNAMIC", "float-quantized", "BF16"],
    ["W8A8", "int-quantized", "F32"],
    ["FP8_BLOCK", "float-quantized", "F32"],
    ["NVFP4A16", "nvfp4-pack-quantized", "BF16"],
    ["MXFP4A16", "mxfp4-pack-quantized", "F32"],
  ];
  for (const [preset, format, dtype] of cases) {
    const values = seeded(42, 256 * 256, 0.05);
    const copy = values.slice();
    const scheme = presetScheme(preset, ["Linear"]);
    const [q] = rtnQuantizeLinears(
      [{ name: "m", values, shape: [256, 256], scheme, format, dtype }],
      { fakeQuantize: true },
    );
    assert(values.every((v, i) => Object.is(v, copy[i])), `${preset}: input unchanged`);
    const dense = decompressModule("m", q.tensors, scheme, format, { dtype }).weight;
    const fq = q.fakeQuantized!;
    let same = 0;
    for (let i = 0; i < dense.length; i++) if (dense[i] === fq[i]) same++;
    assertEquals(same, dense.length, `${preset}: ${dense.length - same} values differ`);
    assert(fq.some((v, i) => v !== values[i]), `${preset}: quantization changed something`);
  }
});

Deno.test("without fakeQuantize no dense copy is made", () => {
  const [q] = rtnQuantizeLinears([{
    name: "m",
    values: seeded(1, 64, 1),
    shape: [8, 8],
    scheme: presetScheme("W8A16", ["Linear"]),
    format: "pack-quantized",
    dtype: "F32",
  }]);
  assertEquals(q.fakeQuantized, null);
  assertEquals(q.tensors.map((t) => t.name), [
    "m.weight_packed",
    "m.weight_shape",
    "m.weight_scale",
  ]);
});

Deno.test("relativeError: false keeps the fake-quantized weight and leaves the error out", () => {
  const linear = {
    name: "m",
    values: seeded(3, 64, 1),
    shape: [8, 8] as [number, number],
    scheme: presetScheme("W8A16", ["Linear"]),
    format: null,
    dtype: "F32" as const,
  };
  const [full] = rtnQuantizeLinears([linear], { fakeQuantize: true });
  const [bare] = rtnQuantizeLinears([linear], { fakeQuantize: true, relativeError: false });
  assert(full.relativeError !== null && full.relativeError > 0);
  assertEquals(bare.relativeError, null);
  assertEquals(bare.fakeQuantized, full.fakeQuantized);
});
