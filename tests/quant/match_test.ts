import { assert, assertEquals, assertThrows } from "./_assert.ts";
import {
  findMatchingScheme,
  generatedIgnoreList,
  isIgnored,
  matchedTargets,
  matchesTarget,
  targetRegExp,
} from "../../src/quant/match.ts";
import { presetScheme } from "../../src/quant/presets.ts";
import { QuantizationConfigError } from "../../src/quant/errors.ts";

Deno.test("re: targets are anchored at the start only", () => {
  assert(matchesTarget("re:.*q_proj", "model.layers.0.self_attn.q_proj_foo", "Linear"));
  assert(!matchesTarget("re:.*q_proj$", "model.layers.0.self_attn.q_proj_foo", "Linear"));
  assert(!matchesTarget("re:q_proj", "model.layers.0.self_attn.q_proj", "Linear"));
  assert(matchesTarget("re:model", "model.layers.0.self_attn.q_proj", "Linear"));
  // an alternation stays anchored as a whole, as Python's re.match does
  assert(!matchesTarget("re:xyz|q_proj", "model.q_proj", "Linear"));
  assert(matchesTarget("re:xyz|model", "model.q_proj", "Linear"));
  assert(matchesTarget("re:(?P<a>model)\\.(?P=a)", "model.model.x", "Linear"));
  assertThrows(() => targetRegExp("("), QuantizationConfigError, "re:(");
});

Deno.test("exact names and class names (incl. ancestors and LinearBase)", () => {
  assert(matchesTarget("lm_head", "lm_head", "Linear"));
  assert(!matchesTarget("lm_head", "model.lm_head", "Linear"));
  assert(matchesTarget("Linear", "x", ["QKVParallelLinear", "LinearBase"]));
  assert(matchesTarget("Linear", "x", ["MyLinear", "Linear"]));
  assert(!matchesTarget("Linear", "x", "Embedding"));
  assert(isIgnored("model.layers.0.mlp.gate", "Linear", ["re:.*mlp.gate$"]));
  assert(!isIgnored("model.layers.0.mlp.gate_proj", "Linear", ["re:.*mlp.gate$"]));
  assert(isIgnored("model.embed_tokens", "Embedding", ["Embedding"]));
});

Deno.test("priority: exact names, then regexes, then class names", () => {
  const name = "model.layers.0.self_attn.q_proj";
  assertEquals(
    matchedTargets(name, "Linear", ["Linear", "re:.*q_proj", name, "re:.*self_attn.*"]),
    [name, "re:.*q_proj", "re:.*self_attn.*", "Linear"],
  );
  const w4 = presetScheme("W4A16", ["Linear"]);
  const w8 = presetScheme("W8A16", ["re:.*down_proj$"]);
  const fp8 = presetScheme("FP8", ["model.layers.1.mlp.down_proj"]);
  const groups = [w4, w8, fp8];
  assertEquals(findMatchingScheme("model.layers.0.mlp.down_proj", "Linear", groups, []), w8);
  assertEquals(findMatchingScheme("model.layers.1.mlp.down_proj", "Linear", groups, []), fp8);
  assertEquals(findMatchingScheme("model.layers.0.mlp.up_proj", "Linear", groups, []), w4);
  assertEquals(findMatchingScheme("model.embed_tokens", "Embedding", groups, []), null);
  assertEquals(findMatchingScheme("lm_head", "Linear", groups, ["lm_head"]), null);
  // ignore beats an exact target
  assertEquals(
    findMatchingScheme("model.layers.1.mlp.down_proj", "Linear", groups, ["re:.*down"]),
    null,
  );
});

Deno.test("a later group with the same target string replaces an earlier one", () => {
  const a = presetScheme("W4A16", ["Linear"]);
  const b = presetScheme("W8A16", ["Linear"]);
  assertEquals(findMatchingScheme("x.q_proj", "Linear", [a, b], []), b);
});

Deno.test("generated ignore list: non-quantized instances of quantized classes, grouped by class", () => {
  const mods = [
    { name: "", className: "LlamaForCausalLM", quantized: false },
    { name: "model.embed_tokens", className: "Embedding", quantized: false },
    { name: "model.layers.0.mlp.gate", className: "Router", quantized: false },
    { name: "model.layers.0.self_attn.q_proj", className: "Linear", quantized: true },
    { name: "model.layers.0.mlp.down_proj", className: "Linear", quantized: false },
    { name: "model.vision.proj", className: "Conv2d", quantized: true },
    { name: "model.vision.patch", className: "Conv2d", quantized: false },
    { name: "model.layers.1.mlp.down_proj", className: "Linear", quantized: false },
    { name: "lm_head", className: "Linear", quantized: false },
  ];
  assertEquals(generatedIgnoreList(mods), [
    "model.layers.0.mlp.down_proj",
    "model.layers.1.mlp.down_proj",
    "lm_head",
    "model.vision.patch",
  ]);
  assertEquals(
    generatedIgnoreList([{ name: "lm_head", className: "Linear", quantized: false }]),
    [],
  );
});
