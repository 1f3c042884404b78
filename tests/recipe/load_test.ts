import assert from "node:assert/strict";
import { loadRecipe, RecipeError } from "../../src/recipe/mod.ts";

const RECIPE_YAML = `
quant_stage:
  quant_modifiers:
    GPTQModifier: {scheme: W4A16, ignore: [lm_head]}
`;

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "llmc_recipe_" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadRecipe reads .yaml, .yml and .json files", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/r.yaml`, RECIPE_YAML);
    await Deno.writeTextFile(`${dir}/r.YML`, RECIPE_YAML);
    await Deno.writeTextFile(
      `${dir}/r.json`,
      JSON.stringify({ quant_stage: { quant_modifiers: { GPTQModifier: { scheme: "W4A16" } } } }),
    );
    for (const name of ["r.yaml", "r.YML", "r.json"]) {
      const r = await loadRecipe(`${dir}/${name}`);
      assert.equal(r.modifiers[0].type, "GPTQModifier", name);
    }
  });
});

Deno.test("a .json file must be JSON (no YAML fallback)", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/r.json`, RECIPE_YAML);
    await assert.rejects(() => loadRecipe(`${dir}/r.json`), /r\.json: not valid JSON/);
  });
});

Deno.test("a .md recipe card is read by its YAML front matter", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/card.md`,
      `---${RECIPE_YAML}---\n# My model\n\nquant_stage: not this\n`,
    );
    const r = await loadRecipe(`${dir}/card.md`);
    assert.equal(r.modifiers.length, 1);
    await Deno.writeTextFile(`${dir}/bare.md`, "# no front matter\n");
    await assert.rejects(
      () => loadRecipe(`${dir}/bare.md`),
      /bare\.md: could not find YAML front matter/,
    );
  });
});

Deno.test("errors and warnings from a file name the file", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/bad.yaml`,
      "q_stage: {q_modifiers: {GPTQModifier: {block_size: x}}}",
    );
    await assert.rejects(
      () => loadRecipe(`${dir}/bad.yaml`),
      (e) =>
        e instanceof RecipeError &&
        e.message.startsWith(`${dir}/bad.yaml: q_stage.q_modifiers.GPTQModifier.block_size:`),
    );
    await Deno.writeTextFile(
      `${dir}/warn.yaml`,
      "q_stage: {q_modifiers: {GPTQModifier: {scheme: W4A16, bogus: 1}}}",
    );
    const r = await loadRecipe(`${dir}/warn.yaml`);
    assert.ok(
      r.warnings[0].startsWith(
        `${dir}/warn.yaml: q_stage.q_modifiers.GPTQModifier.bogus: unknown argument`,
      ),
    );
  });
});

Deno.test("a missing file is an error; other strings are recipe text", async () => {
  await assert.rejects(
    () => loadRecipe("/nonexistent/recipe.yaml"),
    /\/nonexistent\/recipe\.yaml: cannot read recipe file \(no such file\)/,
  );
  const r = await loadRecipe(RECIPE_YAML, { stage: "quant" });
  assert.equal(r.modifiers.length, 1);
});
