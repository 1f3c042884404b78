/** Which layers slide, per architecture, as transformers' configs decide. */

import { parseModelConfig } from "../../src/io/model_config.ts";
import { slidingWindowForLayer } from "../../src/model/sliding_window.ts";
import { assertEquals } from "./_assert.ts";

const BASE = {
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 32,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 100,
};
const windows = (raw: Record<string, unknown>) => {
  const config = parseModelConfig({ ...BASE, ...raw }, "config.json");
  return Array.from({ length: 32 }, (_, k) => slidingWindowForLayer(config, k));
};

Deno.test("mistral slides on every layer; null sliding_window means full attention", () => {
  assertEquals(windows({ model_type: "mistral", sliding_window: 4096 }), Array(32).fill(4096));
  assertEquals(windows({ model_type: "mistral", sliding_window: null }), Array(32).fill(null));
});

Deno.test("qwen2/qwen3: only with use_sliding_window, and only from max_window_layers on", () => {
  assertEquals(windows({ model_type: "qwen2", sliding_window: 4096 }), Array(32).fill(null));
  const expected = Array.from({ length: 32 }, (_, k) => (k >= 28 ? 4096 : null));
  assertEquals(
    windows({ model_type: "qwen2", use_sliding_window: true, sliding_window: 4096 }),
    expected,
  );
  assertEquals(
    windows({
      model_type: "qwen3",
      use_sliding_window: true,
      sliding_window: 64,
      max_window_layers: 30,
    }),
    Array.from({ length: 32 }, (_, k) => (k >= 30 ? 64 : null)),
  );
});

Deno.test("explicit layer_types decide per layer", () => {
  const layerTypes = Array.from(
    { length: 32 },
    (_, k) => (k % 2 ? "sliding_attention" : "full_attention"),
  );
  assertEquals(
    windows({
      model_type: "qwen2",
      use_sliding_window: true,
      sliding_window: 8,
      layer_types: layerTypes,
    }),
    Array.from({ length: 32 }, (_, k) => (k % 2 ? 8 : null)),
  );
});

Deno.test("llama never slides", () => {
  assertEquals(windows({ model_type: "llama", sliding_window: 16 }), Array(32).fill(null));
});
