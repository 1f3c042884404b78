/**
 * Writes the golden cases' synthetic checkpoints for make_goldens.py:
 * `deno run -A tests/moe/golden/write_checkpoints.ts OUT_DIR` creates
 * OUT_DIR/<case>/ with config.json, model.safetensors and ids.json
 * (`{"batch", "seq", "ids"}`), the same bytes moe_golden_test.ts generates.
 *
 * @module
 */

import { writeSyntheticModel } from "../../../src/model/synthetic_model.ts";
import { GOLDEN_BATCH, GOLDEN_SEQ, GOLDEN_SPECS, goldenIds } from "./_specs.ts";

if (import.meta.main) {
  const out = Deno.args[0];
  if (out === undefined) throw new Error("usage: write_checkpoints.ts OUT_DIR");
  for (const [name, spec] of Object.entries(GOLDEN_SPECS)) {
    const dir = `${out}/${name}`;
    await Deno.mkdir(dir, { recursive: true });
    await writeSyntheticModel(spec, dir);
    const ids = Array.from(goldenIds(spec.vocab));
    await Deno.writeTextFile(
      `${dir}/ids.json`,
      JSON.stringify({ batch: GOLDEN_BATCH, seq: GOLDEN_SEQ, ids }),
    );
    console.log(`wrote ${dir}`);
  }
}
