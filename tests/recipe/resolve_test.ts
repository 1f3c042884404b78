import assert from "node:assert/strict";
import {
  GPTQModifier,
  type GPTQModifierSpec,
  parseRecipe,
  QuantizationModifier,
  RecipeError,
  resolveQuantizationConfig,
} from "../../src/recipe/mod.ts";

const W4G128 = { num_bits: 4, type: "int", symmetric: true, strategy: "group", group_size: 128 };

Deno.test("scheme string → one preset group on the modifier's targets (a bare string target is a list)", () => {
  const r = resolveQuantizationConfig(
    QuantizationModifier({ scheme: "w4a16", targets: "re:.*proj$" }),
  );
  assert.deepEqual(Object.keys(r.configGroups), ["group_0"]);
  assert.deepEqual(r.configGroups.group_0.targets, ["re:.*proj$"]);
  assert.equal(r.configGroups.group_0.weights!.groupSize, 128);
  assert.deepEqual(r.resolvedTargets, ["re:.*proj$"]);
  assert.equal(r.hasConfig, true);
});

Deno.test("{PRESET: targets} → group_<i> per key, in order; targets deduplicated in resolvedTargets", () => {
  const m = QuantizationModifier({
    scheme: { W8A16: "re:.*down_proj$", W4A16: ["Linear", "re:.*down_proj$"] },
  });
  assert.deepEqual(m.scheme, {
    form: "presets",
    presets: { W8A16: ["re:.*down_proj$"], W4A16: ["Linear", "re:.*down_proj$"] },
  });
  const r = resolveQuantizationConfig(m);
  assert.deepEqual(Object.keys(r.configGroups), ["group_0", "group_1"]);
  assert.equal(r.configGroups.group_0.weights!.numBits, 8);
  assert.equal(r.configGroups.group_1.weights!.numBits, 4);
  assert.deepEqual(r.resolvedTargets, ["re:.*down_proj$", "Linear"]);
});

Deno.test("scheme body → one group taking the modifier's targets", () => {
  const m = QuantizationModifier({ targets: ["Linear"], scheme: { weights: W4G128 } });
  assert.equal(m.scheme!.form, "body");
  const g = resolveQuantizationConfig(m).configGroups.group_0;
  assert.deepEqual(g.targets, ["Linear"]);
  assert.equal(g.weights!.strategy, "group");
  assert.throws(
    () => QuantizationModifier({ scheme: { weights: W4G128, targets: ["Linear"] } }),
    /QuantizationModifier\.scheme\.targets: a scheme body takes its targets from the modifier's `targets`/,
  );
  assert.throws(
    () => QuantizationModifier({ scheme: { weights: { ...W4G128, num_bits: "4" } } }),
    /QuantizationModifier\.scheme\.weights\.num_bits: expected a positive integer/,
  );
});

Deno.test("config_groups keep their names", () => {
  const r = resolveQuantizationConfig(QuantizationModifier({
    configGroups: {
      attn: { targets: ["re:.*self_attn.*"], weights: { num_bits: 8 } },
      mlp: { targets: ["re:.*mlp.*"], weights: W4G128 },
    },
  }));
  assert.deepEqual(Object.keys(r.configGroups), ["attn", "mlp"]);
});

Deno.test("scheme and config_groups together are an error", () => {
  assert.throws(
    () =>
      parseRecipe({
        q_stage: {
          q_modifiers: {
            QuantizationModifier: {
              scheme: "W4A16",
              config_groups: { group_0: { targets: ["Linear"], weights: W4G128 } },
            },
          },
        },
      }),
    (e) =>
      e instanceof RecipeError &&
      e.message ===
        "q_stage.q_modifiers.QuantizationModifier: give either scheme or config_groups, not both",
  );
});

Deno.test("a QuantizationModifier with nothing to quantize is an error; a bare GPTQModifier is not", () => {
  assert.throws(() => QuantizationModifier({}), /QuantizationModifier: nothing to quantize/);
  assert.throws(() => QuantizationModifier({ ignore: ["lm_head"] }), /nothing to quantize/);
  const g = resolveQuantizationConfig(GPTQModifier({}));
  assert.equal(g.hasConfig, false, "GPTQ then uses the schemes a preceding modifier attached");
  assert.deepEqual(g.configGroups.group_0.targets, ["Linear"]);
  assert.equal(g.configGroups.group_0.weights, null);
});

Deno.test("kv_cache_scheme alone is a config, and adds re:.*self_attn$ to the targets", () => {
  const r = resolveQuantizationConfig(QuantizationModifier({
    kvCacheScheme: {
      num_bits: 8,
      type: "float",
      strategy: "tensor",
      dynamic: false,
      symmetric: true,
    },
  }));
  assert.deepEqual(r.resolvedTargets, ["Linear", "re:.*self_attn$"]);
  assert.equal(r.kvCacheScheme!.numBits, 8);
});

Deno.test("observer overrides apply to every group; the mapping form is exclusive with the three", () => {
  const base = {
    configGroups: {
      a: { targets: ["x"], weights: W4G128, input_activations: { num_bits: 8 } },
      b: { targets: ["y"], weights: { num_bits: 8 } },
    },
  };
  const r = resolveQuantizationConfig(QuantizationModifier({ ...base, weightObserver: "mse" }));
  assert.equal(r.configGroups.a.weights!.observer, "mse");
  assert.equal(r.configGroups.b.weights!.observer, "mse");
  assert.equal(r.configGroups.a.inputActivations!.observer, "minmax", "inputs untouched");
  const d = resolveQuantizationConfig(
    QuantizationModifier({
      ...base,
      observer: { input: "static_minmax", weights: "memoryless_mse" },
    }),
  );
  assert.equal(d.configGroups.a.inputActivations!.observer, "static_minmax");
  assert.equal(d.configGroups.b.weights!.observer, "memoryless_mse");
  const preset = resolveQuantizationConfig(
    QuantizationModifier({ scheme: "W4A16", weightObserver: "mse" }),
  );
  assert.equal(preset.configGroups.group_0.weights!.observer, "mse");
  assert.throws(
    () => QuantizationModifier({ ...base, weightObserver: "mse", observer: { input: "mse" } }),
    /QuantizationModifier\.observer: give either weight_observer\/input_observer\/output_observer or the observer mapping, not both/,
  );
  assert.throws(
    () => QuantizationModifier({ ...base, observer: { activations: "mse" } as never }),
    /QuantizationModifier\.observer\.activations: unknown observer key/,
  );
});

function gptq(
  actorder: string | null | undefined,
  own: string | null,
  strategy = "group",
): GPTQModifierSpec {
  const weights: Record<string, unknown> = strategy === "group"
    ? { ...W4G128, actorder: own }
    : { num_bits: 8, strategy };
  return GPTQModifier({
    configGroups: { group_0: { targets: ["Linear"], weights } },
    ...(actorder === undefined ? {} : { actorder: actorder as never }),
  });
}

function resolvedActorder(m: GPTQModifierSpec): string | null {
  return resolveQuantizationConfig(m).configGroups.group_0.weights!.actorder;
}

Deno.test("GPTQ actorder: the default sentinel fills only groups that did not choose", () => {
  assert.equal(resolvedActorder(gptq(undefined, null)), "static");
  assert.equal(resolvedActorder(gptq(undefined, "group")), "group");
  assert.equal(
    resolvedActorder(gptq(undefined, null, "channel")),
    null,
    "non-group weights untouched",
  );
  const preset = resolveQuantizationConfig(GPTQModifier({ scheme: "W4A16" }));
  assert.equal(preset.configGroups.group_0.weights!.actorder, "static");
});

Deno.test("GPTQ actorder: an explicit value overrides null, agrees with an alias, conflicts otherwise", () => {
  assert.equal(resolvedActorder(gptq("weight", null)), "weight");
  assert.equal(
    resolvedActorder(gptq("static", "weight")),
    "static",
    "static is an alias of weight",
  );
  assert.equal(resolvedActorder(gptq("dynamic", "group")), "dynamic");
  assert.equal(resolvedActorder(gptq(null, null)), null, "null disables");
  assert.throws(
    () => gptq("group", "static"),
    (e) =>
      e instanceof RecipeError &&
      /^GPTQModifier\.actorder: "group" conflicts with config group group_0's weights\.actorder "static"/
        .test(e.message),
  );
  assert.throws(() => gptq(null, "group"), /actorder: null conflicts with config group group_0/);
  assert.throws(
    () =>
      parseRecipe("s_stage: {g_modifiers: {GPTQModifier: {actorder: sideways, scheme: W4A16}}}"),
    /s_stage\.g_modifiers\.GPTQModifier\.actorder: expected one of "group", "weight", "dynamic", "static", got "sideways"/,
  );
});
