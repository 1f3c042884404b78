/** Row blocks of checkpoint matrices, read without reading the whole tensor. */

import { toBf16 } from "../../src/io/floats.ts";
import { HfModel } from "../../src/io/hf_model.ts";
import { writeSafetensors } from "../../src/io/safetensors_write.ts";
import { readMatrixRows } from "../../src/model/matrix_rows.ts";
import { DecoderModelError } from "../../src/model/model_error.ts";
import { assertEquals, assertRejects } from "./_assert.ts";

Deno.test("readMatrixRows: F32 and BF16 rows equal the slice of the whole tensor", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llmc_rows_" });
  try {
    const rows = 7, cols = 5;
    const values = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.25 - 3);
    const bf16 = toBf16(values);
    await writeSafetensors(`${dir}/model.safetensors`, [
      { name: "a", dtype: "F32", shape: [rows, cols], data: new Uint8Array(values.buffer) },
      { name: "b", dtype: "BF16", shape: [rows, cols], data: new Uint8Array(bf16.buffer) },
    ]);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({
        model_type: "llama",
        hidden_size: cols,
        intermediate_size: 8,
        num_hidden_layers: 1,
        num_attention_heads: 1,
        head_dim: 4,
        vocab_size: rows,
      }),
    );
    const hf = await HfModel.open(dir);
    try {
      for (const name of ["a", "b"]) {
        const whole = await hf.readF32(name);
        assertEquals(await readMatrixRows(hf, name, cols, 2, 3), whole.slice(2 * cols, 5 * cols));
        assertEquals(await readMatrixRows(hf, name, cols, 0, rows), whole);
        // A source that cannot locate tensors falls back to reading them whole.
        const plain = {
          config: hf.config,
          has: (n: string) => hf.has(n),
          readF32: (n: string) => hf.readF32(n),
        };
        assertEquals(await readMatrixRows(plain, name, cols, 6, 1), whole.slice(6 * cols));
      }
      await assertRejects(
        () => readMatrixRows(hf, "a", cols, 5, 3),
        DecoderModelError,
        "rows 5..7",
      );
      await assertRejects(
        () => readMatrixRows(hf, "a", 4, 0, 1),
        DecoderModelError,
        "expected [*, 4]",
      );
    } finally {
      hf.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
