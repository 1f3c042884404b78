import assert from "node:assert/strict";
import { parseRecipe, RecipeError } from "../../src/recipe/mod.ts";

Deno.test("stage and group keys: suffixes stripped, document order kept, last stage recorded", () => {
  const r = parseRecipe(`
sparsity_stage:
  obcq_modifiers:
    SparseGPTModifier: {sparsity: 0.5}
quant_stage:
  quant_modifiers:
    QuantizationModifier: {scheme: W8A16}
  gptq_modifiers:
    GPTQModifier: {scheme: W4A16}
`);
  assert.equal(r.stage, "quant");
  assert.deepEqual(
    r.modifiers.map((m) => [m.stage, m.group, m.type]),
    [
      ["sparsity", "obcq", "SparseGPTModifier"],
      ["quant", "quant", "QuantizationModifier"],
      ["quant", "gptq", "GPTQModifier"],
    ],
  );
  assert.deepEqual(r.warnings, []);
});

Deno.test("a recipe without stages records stage 'default'", () => {
  const r = parseRecipe("args: {x: 1}");
  assert.equal(r.stage, "default");
  assert.deepEqual(r.modifiers, []);
  assert.deepEqual(r.args, { x: 1 });
});

Deno.test("unknown keys at every level are warnings, collected and sent to onWarning", () => {
  const seen: string[] = [];
  const r = parseRecipe(
    `
quant:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16}
quant_stage:
  run_type: oneshot
  quant_modifier:
    GPTQModifier: {scheme: W4A16}
  quant_modifiers:
    QuantizationModifier:
      scheme: W4A16
      blocksize: 64
      Ignore: [lm_head]
`,
    { onWarning: (m) => seen.push(m) },
  );
  assert.equal(r.modifiers.length, 1);
  assert.deepEqual(seen, r.warnings);
  assert.equal(r.warnings.length, 5);
  assert.match(
    r.warnings[0],
    /^quant: unknown top-level key, ignored; .*did you mean "quant_stage"\?/,
  );
  assert.match(r.warnings[1], /^quant_stage\.run_type: unknown key, ignored$/);
  assert.match(r.warnings[2], /^quant_stage\.quant_modifier: .*did you mean "quant_modifiers"\?/);
  assert.match(
    r.warnings[3],
    /^quant_stage\.quant_modifiers\.QuantizationModifier\.blocksize: unknown argument, ignored \(llm-compressor ignores it silently\)$/,
  );
  assert.match(r.warnings[4], /\.Ignore: unknown argument.*did you mean "ignore"\?/);
});

Deno.test("a modifier placed directly under a stage is a warning with a hint", () => {
  const r = parseRecipe("quant_stage:\n  GPTQModifier: {scheme: W4A16}\n");
  assert.equal(r.modifiers.length, 0);
  assert.match(r.warnings[0], /quant_stage\.GPTQModifier: .*inside a <group>_modifiers mapping/);
});

Deno.test("JSON text is read as JSON", () => {
  const r = parseRecipe(JSON.stringify({
    quant_stage: { quant_modifiers: { QuantizationModifier: { scheme: "FP8_DYNAMIC" } } },
  }));
  assert.equal(r.modifiers[0].type, "QuantizationModifier");
});

Deno.test("an already-parsed object is accepted", () => {
  const r = parseRecipe({ a_stage: { b_modifiers: { GPTQModifier: { scheme: "W4A16" } } } });
  assert.deepEqual([r.stage, r.modifiers[0].group], ["a", "b"]);
});

Deno.test("stage filter keeps top-level keys with that prefix", () => {
  const text = `
sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier: {sparsity: 0.5}
quant_stage:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16}
`;
  const r = parseRecipe(text, { stage: "quant" });
  assert.deepEqual(r.modifiers.map((m) => m.type), ["GPTQModifier"]);
  assert.equal(r.stage, "quant");
  assert.throws(
    () => parseRecipe(text, { stage: "train" }),
    /stage "train" matches no top-level key/,
  );
});

Deno.test("duplicate modifier class in one group is an error naming the group", () => {
  const text = `
quant_stage:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16}
    GPTQModifier: {scheme: W8A16}
`;
  assert.throws(
    () => parseRecipe(text, { file: "r.yaml" }),
    (e) =>
      e instanceof RecipeError &&
      /^r\.yaml: quant_stage\.quant_modifiers: duplicate key "GPTQModifier" \(line 5\)/.test(
        e.message,
      ),
  );
  // JSON.parse would keep the last one silently; the check sees the text.
  const json = '{"q_stage": {"q_modifiers": {"GPTQModifier": {}, "GPTQModifier": {}}}}';
  assert.throws(() => parseRecipe(json), /q_stage\.q_modifiers: duplicate key "GPTQModifier"/);
});

Deno.test("the same class in two groups or two stages is fine", () => {
  const r = parseRecipe(`
a_stage:
  one_modifiers: {QuantizationModifier: {scheme: W8A16}}
  two_modifiers: {QuantizationModifier: {scheme: W4A16}}
b_stage:
  one_modifiers: {QuantizationModifier: {scheme: FP8}}
`);
  assert.deepEqual(r.modifiers.map((m) => `${m.stage}/${m.group}`), ["a/one", "a/two", "b/one"]);
});

Deno.test("a group: argument overrides the inferred group", () => {
  const r = parseRecipe("s_stage: {g_modifiers: {GPTQModifier: {scheme: W4A16, group: mine}}}");
  assert.equal(r.modifiers[0].group, "mine");
});

Deno.test("empty stages and groups warn; wrong shapes are errors", () => {
  const r = parseRecipe("a_stage:\nb_stage:\n  c_modifiers:\n");
  assert.deepEqual(r.warnings, [
    "a_stage: empty stage, ignored",
    "b_stage.c_modifiers: empty modifier group, ignored",
  ]);
  assert.throws(
    () => parseRecipe("a_stage: [1]"),
    /^RecipeError: a_stage: expected a mapping of <group>_modifiers keys/,
  );
  assert.throws(
    () => parseRecipe("a_stage: {b_modifiers: 3}"),
    /a_stage\.b_modifiers: expected a mapping of modifier class names, got 3/,
  );
  assert.throws(
    () => parseRecipe("a_stage: {b_modifiers: {GPTQModifier: [1]}}"),
    /a_stage\.b_modifiers\.GPTQModifier: expected a mapping of arguments/,
  );
  assert.throws(() => parseRecipe("- 1\n- 2\n"), /a recipe must be a mapping/);
  assert.throws(() => parseRecipe("args: 3"), /args: expected a mapping/);
  assert.throws(
    () => parseRecipe("a: [", { file: "x.yaml" }),
    /^RecipeError: x\.yaml: not valid JSON or YAML/,
  );
});

Deno.test("YAML is read as PyYAML's YAML 1.1 would read it", () => {
  // Unquoted 0:0 stays a string (PyYAML's base-60 ints need a non-zero first digit) ...
  const r = parseRecipe(
    "s_stage: {g_modifiers: {SparseGPTModifier: {sparsity: 0.5, mask_structure: 0:0, preserve_sparsity_mask: yes}}}",
  );
  const m = r.modifiers[0];
  assert.equal(m.type, "SparseGPTModifier");
  if (m.type !== "SparseGPTModifier") return;
  assert.equal(m.maskStructure, "0:0");
  assert.equal(m.preserveSparsityMask, true);
  // ... while unquoted 2:4 is the number 124 there: say so.
  assert.throws(
    () =>
      parseRecipe(
        "s_stage: {g_modifiers: {SparseGPTModifier: {sparsity: 0.5, mask_structure: 2:4}}}",
      ),
    /s_stage\.g_modifiers\.SparseGPTModifier\.mask_structure: expected a string "N:M", got 124; quote it/,
  );
});

Deno.test("a deprecated sparsity argument is accepted with a warning", () => {
  const r = parseRecipe(
    "s_stage: {g_modifiers: {SparseGPTModifier: {sparsity: 0.5, sequential_update: false}}}",
  );
  assert.equal(r.modifiers.length, 1);
  assert.match(
    r.warnings[0],
    /SparseGPTModifier\.sequential_update: deprecated upstream and ignored/,
  );
});
