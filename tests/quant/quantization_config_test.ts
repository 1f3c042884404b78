import { assert, assertEquals } from "./_assert.ts";
import { buildQuantizationConfig } from "../../src/quant/quantization_config.ts";
import { findMatchingScheme } from "../../src/quant/match.ts";
import { parsePythonJson, PyFloat } from "../../src/quant/python_json.ts";
import { pythonFloatRepr, stableStringify } from "../../src/quant/stable_stringify.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { parseQuantizationArgs } from "../../src/quant/args.ts";
import {
  llamaModuleTree,
  readReferenceRecipe,
  REFERENCE_FOLDERS,
  SHARED,
} from "./_reference_recipes.ts";

Deno.test("pythonFloatRepr matches Python's repr(float)", () => {
  const cases: [number, string][] = [
    [1e-5, "1e-05"],
    [0.0001, "0.0001"],
    [0.00012, "0.00012"],
    [1.5e-7, "1.5e-07"],
    [10000, "10000.0"],
    [0.02, "0.02"],
    [0, "0.0"],
    [-0, "-0.0"],
    [1e16, "1e+16"],
    [123456789012345680, "1.2345678901234568e+17"],
    [1e15, "1000000000000000.0"],
    [0.1 + 0.2, "0.30000000000000004"],
    [-2.5, "-2.5"],
    [1e100, "1e+100"],
    [5e-324, "5e-324"],
    [NaN, "NaN"],
    [-Infinity, "-Infinity"],
    [3.4028234663852886e38, "3.4028234663852886e+38"],
  ];
  for (const [x, s] of cases) assertEquals(pythonFloatRepr(x), s, String(x));
});

Deno.test("stableStringify: Python json.dumps(indent=2, sort_keys=True)", () => {
  assertEquals(stableStringify({}), "{}");
  assertEquals(stableStringify([]), "[]");
  assertEquals(
    stableStringify({ b: [1, new PyFloat(2), 'é\n"', null, true], a: { z: {}, y: [] } }),
    '{\n  "a": {\n    "y": [],\n    "z": {}\n  },\n  "b": [\n    1,\n    2.0,\n    "\\u00e9\\n\\"",\n    null,\n    true\n  ]\n}',
  );
  assertEquals(stableStringify({ B: 1, a: 2, _: 3 }), '{\n  "B": 1,\n  "_": 3,\n  "a": 2\n}');
});

Deno.test("every reference config.json round-trips byte for byte", async () => {
  for (const folder of REFERENCE_FOLDERS) {
    const text = await Deno.readTextFile(new URL(`reference/${folder}/config.json`, SHARED));
    const v = parsePythonJson(text, `${folder}/config.json`);
    assert((v as Record<string, unknown>).rope_theta instanceof PyFloat);
    assertEquals(stableStringify(v), text, folder);
  }
});

Deno.test("quantization_config of each reference recipe equals the reference object", async () => {
  for (const folder of REFERENCE_FOLDERS) {
    const { groups, ignore } = await readReferenceRecipe(folder);
    const modules = llamaModuleTree(5).map((m) => ({
      ...m,
      scheme: m.className === "Linear"
        ? findMatchingScheme(m.name, m.className, groups, ignore)
        : null,
    }));
    const built = buildQuantizationConfig({ modules });
    const text = await Deno.readTextFile(new URL(`reference/${folder}/config.json`, SHARED));
    const ref = (parsePythonJson(text) as Record<string, unknown>).quantization_config;
    assertEquals(built, ref, folder);
    assertEquals(stableStringify(built), stableStringify(ref as never), folder);
  }
});

Deno.test("several formats give mixed-precision with per-group formats; kv cache; omitNullDtypes", () => {
  const w4 = presetScheme("W4A16", ["re:.*proj$"]);
  const fp8 = presetScheme("FP8_DYNAMIC", ["re:.*down_proj$"]);
  const kv = parseQuantizationArgs({ num_bits: 8, type: "float", strategy: "tensor" }, "kv");
  const qc = buildQuantizationConfig({
    modules: [
      { name: "a.q_proj", className: "Linear", scheme: w4 },
      { name: "a.down_proj", className: "Linear", scheme: fp8 },
      { name: "a.up_proj", className: "Linear", scheme: w4 },
      { name: "lm_head", className: "Linear", scheme: null },
    ],
    kvCacheScheme: kv,
    argsJson: { omitNullDtypes: true },
  });
  assertEquals(qc.format, "mixed-precision");
  const groups = qc.config_groups as Record<string, Record<string, unknown>>;
  assertEquals(Object.keys(groups), ["group_0", "group_1"]);
  assertEquals([groups.group_0.format, groups.group_1.format], [
    "pack-quantized",
    "float-quantized",
  ]);
  assert(!("scale_dtype" in (groups.group_0.weights as Record<string, unknown>)));
  assertEquals((qc.kv_cache_scheme as Record<string, unknown>).type, "float");
  assertEquals(qc.ignore, ["lm_head"]);
  const none = buildQuantizationConfig({
    modules: [{ name: "lm_head", className: "Linear", scheme: null }],
  });
  assertEquals([none.format, none.config_groups], ["dense", {}]);
});
