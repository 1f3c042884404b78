/**
 * RoPE frequencies for every rope_scaling type against an independent float64
 * transcription of transformers' formulas, and from parsed config.json files.
 * (The architecture tests share `ropeTable` between GPU and reference, so
 * these are the tests that can catch a wrong frequency.)
 */

import { parseModelConfig } from "../../src/io/model_config.ts";
import { ropeFrequencies, ropeTable } from "../../src/model/rope.ts";
import { assert, assertClose, assertEquals } from "./_assert.ts";

const DIM = 32;
const THETA = 10000;
const base = { headDim: DIM, ropeTheta: THETA, maxPositionEmbeddings: 64 };

function defaultF64(theta: number): number[] {
  return Array.from({ length: DIM / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / DIM));
}

Deno.test("default: 1 / theta^(2i/d)", () => {
  const { invFreq, attentionScaling } = ropeFrequencies({
    ...base,
    ropeScaling: { type: "default" },
  }, 10);
  assertClose(invFreq, defaultF64(THETA), 1e-7);
  assertEquals(attentionScaling, 1);
});

Deno.test("linear: default / factor", () => {
  const { invFreq } = ropeFrequencies({ ...base, ropeScaling: { type: "linear", factor: 4 } }, 10);
  assertClose(invFreq, defaultF64(THETA).map((f) => f / 4), 1e-7);
});

Deno.test("dynamic: unchanged up to max positions, NTK base growth beyond", () => {
  const config = { ...base, ropeScaling: { type: "dynamic" as const, factor: 2 } };
  assertClose(ropeFrequencies(config, 64).invFreq, defaultF64(THETA), 1e-7);
  const L = 200;
  const grown = THETA * Math.pow((2 * L) / 64 - 1, DIM / (DIM - 2));
  const { invFreq } = ropeFrequencies(config, L);
  assertClose(invFreq, defaultF64(grown), 1e-6);
  assert(invFreq[DIM / 2 - 1] < defaultF64(THETA)[DIM / 2 - 1], "low frequencies shrink");
});

Deno.test("llama3: high band kept, low band / factor, middle interpolated", () => {
  const scaling = {
    type: "llama3" as const,
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 32,
  };
  const { invFreq } = ropeFrequencies({ ...base, ropeScaling: scaling }, 10);
  const expected = defaultF64(THETA).map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 32 / 4) return f;
    if (wavelen > 32 / 1) return f / 8;
    const smooth = (32 / wavelen - 1) / (4 - 1);
    return ((1 - smooth) * f) / 8 + smooth * f;
  });
  assertClose(invFreq, expected, 1e-6);
  // The configuration exercises all three bands.
  const bands = new Set(
    defaultF64(THETA).map((f) => {
      const w = (2 * Math.PI) / f;
      return w < 8 ? "high" : w > 32 ? "low" : "mid";
    }),
  );
  assertEquals(bands.size, 3);
});

Deno.test("tables: cos/sin of position x inv_freq, row per position", () => {
  const t = ropeTable({ ...base, ropeScaling: { type: "default" } }, 5);
  assertEquals(t.half, DIM / 2);
  const f = defaultF64(THETA);
  for (const pos of [0, 3, 4]) {
    for (const i of [0, 5, 15]) {
      assertClose([t.cos[pos * t.half + i]], [Math.cos(pos * f[i])], 1e-6);
      assertClose([t.sin[pos * t.half + i]], [Math.sin(pos * f[i])], 1e-6);
    }
  }
});

Deno.test("config.json rope_scaling reaches the frequencies", () => {
  const raw = {
    model_type: "llama",
    hidden_size: 256,
    intermediate_size: 512,
    num_hidden_layers: 1,
    num_attention_heads: 8,
    vocab_size: 100,
    max_position_embeddings: 64,
  };
  const freqs = (rope_scaling: unknown, seqLen = 16) =>
    ropeFrequencies(parseModelConfig({ ...raw, rope_scaling }, "config.json"), seqLen).invFreq;
  const plain = freqs(null);
  assertClose(plain, defaultF64(THETA), 1e-7);
  assertClose(freqs({ type: "linear", factor: 2 }), defaultF64(THETA).map((x) => x / 2), 1e-7);
  assertClose(freqs({ rope_type: "dynamic", factor: 2 }, 16), plain, 0);
  assert(freqs({ rope_type: "dynamic", factor: 2 }, 128)[8] < plain[8], "dynamic grows the base");
  const l3 = freqs({
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 32,
  });
  assertClose([l3[DIM / 2 - 1]], [plain[DIM / 2 - 1] / 8], 1e-6);
});
