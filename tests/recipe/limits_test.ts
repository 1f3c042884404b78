import assert from "node:assert/strict";
import { RecipeError } from "../../src/recipe/errors.ts";
import { loadRecipe } from "../../src/recipe/load.ts";
import { parseRecipe } from "../../src/recipe/parse.ts";
import { MAX_RECIPE_ALIAS_COUNT, MAX_RECIPE_DEPTH } from "../../src/recipe/_text.ts";

const GOOD = `quant_stage:
  quant_modifiers:
    QuantizationModifier: {targets: [Linear], scheme: W4A16, ignore: [lm_head]}
`;

function laughs(levels: number): string {
  let text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (let i = 1; i <= levels; i++) {
    text += `l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(", ")}]\n`;
  }
  return GOOD + text;
}

function rejects(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (e) => {
    assert.ok(e instanceof RecipeError, `expected a RecipeError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("a billion-laughs recipe is a RecipeError naming the file, line and cap", () => {
  rejects(
    () => parseRecipe(laughs(9), { file: "lol.yaml" }),
    new RegExp(`^lol\\.yaml: alias \\*l1 at line 6 .*cap of ${MAX_RECIPE_ALIAS_COUNT}`),
  );
});

Deno.test("a few aliases below the cap still work, as PyYAML reads them", () => {
  const r = parseRecipe(
    `x: &ign [lm_head]
quant_stage:
  quant_modifiers:
    QuantizationModifier: {targets: [Linear], scheme: W4A16, ignore: *ign}
`,
    { onWarning: () => {} },
  );
  assert.deepEqual((r.modifiers[0] as { ignore: readonly string[] }).ignore, ["lm_head"]);
});

Deno.test("an unresolved alias is a RecipeError naming the alias and its line", () => {
  rejects(
    () => parseRecipe(GOOD + "extra: *nope\n", { file: "r.yaml" }),
    /^r\.yaml: alias \*nope at line 4 refers to no anchor &nope/,
  );
  // An alias used before its anchor is unresolved in YAML too.
  rejects(() => parseRecipe("a: *x\nb: &x 1\n"), /alias \*x at line 1/);
});

Deno.test("deep flow nesting is refused before parsing, YAML and JSON alike", () => {
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  rejects(
    () => parseRecipe(`${GOOD}extra: ${deep}\n`, { file: "r.yaml" }),
    new RegExp(`^r\\.yaml: recipe nests deeper than ${MAX_RECIPE_DEPTH} levels \\(line 4`),
  );
  rejects(() => parseRecipe(`{"a": ${deep}}`), /nests deeper than 64 levels \(line 1/);
});

Deno.test("deep block nesting (indentation) is a RecipeError, not a stack overflow", () => {
  for (const n of [100, 5_000]) {
    const text = Array.from({ length: n }, (_, i) => " ".repeat(i) + "k:").join("\n") + " 1\n";
    rejects(() => parseRecipe(text, { file: "deep.yaml" }), /^deep\.yaml: recipe nests/);
  }
});

Deno.test("recipe files: the same errors name the path; .json files are checked before JSON.parse", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/lol.yml`, laughs(9));
    await assert.rejects(loadRecipe(`${dir}/lol.yml`), (e) => {
      assert.ok(e instanceof RecipeError);
      assert.ok(e.message.startsWith(`${dir}/lol.yml: alias *l1 at line 6`), e.message);
      return true;
    });
    await Deno.writeTextFile(`${dir}/deep.json`, `{"a": ${"[".repeat(1e5)}${"]".repeat(1e5)}}`);
    await assert.rejects(loadRecipe(`${dir}/deep.json`), (e) => {
      assert.ok(e instanceof RecipeError);
      assert.match(e.message, new RegExp(`^${dir}/deep\\.json: recipe nests deeper than 64`));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a list or mapping used as a key is a RecipeError, as in PyYAML", () => {
  rejects(
    () => parseRecipe("a_stage:\n  ? [x]\n  : 1\n", { file: "k.yaml" }),
    /^k\.yaml: a_stage: a mapping key must be a plain scalar, got a list \(line 2\)/,
  );
  rejects(() => parseRecipe("{[a]: 1}"), /the top level: a mapping key must be a plain scalar/);
});
