import assert from "node:assert/strict";
import { ModelConfigError, parseModelConfig, parseRopeScaling } from "../../src/io/model_config.ts";
import { STORIES_DIR } from "./_helpers.ts";

const base = {
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  vocab_size: 1000,
};

function expectError(raw: unknown, field: string | null, pattern: RegExp) {
  assert.throws(() => parseModelConfig(raw, "cfg/config.json"), (e) => {
    assert.ok(e instanceof ModelConfigError, String(e));
    assert.equal(e.file, "cfg/config.json");
    assert.equal(e.field, field);
    assert.ok(e.message.startsWith("cfg/config.json: "), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("stories260K config.json", async () => {
  const raw = JSON.parse(await Deno.readTextFile(`${STORIES_DIR}/config.json`));
  const c = parseModelConfig(raw, "config.json");
  assert.deepEqual({ ...c, raw: undefined }, {
    modelType: "llama",
    hiddenSize: 64,
    intermediateSize: 172,
    numHiddenLayers: 5,
    numAttentionHeads: 8,
    numKeyValueHeads: 4,
    headDim: 8,
    vocabSize: 512,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: { type: "default" },
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    attentionBias: false,
    mlpBias: false,
    qkNorm: false,
    moe: null,
    slidingWindow: null,
    hiddenAct: "silu",
    bosTokenId: 1,
    eosTokenIds: [2],
    torchDtype: "float32",
    raw: undefined,
  });
  assert.equal(c.raw, raw);
});

Deno.test("llama defaults follow transformers' LlamaConfig", () => {
  const c = parseModelConfig({ model_type: "llama", ...base }, "config.json");
  assert.equal(c.numKeyValueHeads, 8); // = heads
  assert.equal(c.headDim, 32); // hidden / heads
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.maxPositionEmbeddings, 2048);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.attentionBias, false);
  assert.equal(c.mlpBias, false);
  assert.equal(c.bosTokenId, 1);
  assert.deepEqual(c.eosTokenIds, [2]);
  assert.equal(c.slidingWindow, null);
  const b = parseModelConfig(
    {
      model_type: "llama",
      ...base,
      attention_bias: true,
      mlp_bias: true,
      head_dim: 64,
      num_key_value_heads: null,
    },
    "config.json",
  );
  assert.equal(b.attentionBias, true);
  assert.equal(b.mlpBias, true);
  assert.equal(b.headDim, 64);
  assert.equal(b.numKeyValueHeads, 8);
});

Deno.test("llama 3.1 style: llama3 rope scaling, eos list, dtype key", () => {
  const c = parseModelConfig({
    model_type: "llama",
    ...base,
    num_key_value_heads: 2,
    rope_theta: 500000.0,
    rope_scaling: {
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
      rope_type: "llama3",
    },
    eos_token_id: [128001, 128008, 128009],
    bos_token_id: 128000,
    dtype: "bfloat16",
  }, "config.json");
  assert.deepEqual(c.ropeScaling, {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(c.ropeTheta, 500000);
  assert.deepEqual(c.eosTokenIds, [128001, 128008, 128009]);
  assert.equal(c.bosTokenId, 128000);
  assert.equal(c.torchDtype, "bfloat16");
  assert.equal(c.numKeyValueHeads, 2);
});

Deno.test("rope_scaling variants, legacy 'type' key, and rope_parameters", () => {
  assert.deepEqual(parseRopeScaling(null, "c"), { type: "default" });
  assert.deepEqual(parseRopeScaling({ rope_type: "default" }, "c"), { type: "default" });
  assert.deepEqual(parseRopeScaling({ type: "linear", factor: 2.0 }, "c"), {
    type: "linear",
    factor: 2,
  });
  assert.deepEqual(parseRopeScaling({ type: "dynamic", factor: 4 }, "c"), {
    type: "dynamic",
    factor: 4,
  });
  assert.deepEqual(
    parseRopeScaling(
      { rope_type: "dynamic", factor: 4, original_max_position_embeddings: 4096 },
      "c",
    ),
    { type: "dynamic", factor: 4, originalMaxPositionEmbeddings: 4096 },
  );
  // rope_type wins over type when both are present (transformers' order).
  assert.deepEqual(parseRopeScaling({ rope_type: "linear", type: "dynamic", factor: 3 }, "c"), {
    type: "linear",
    factor: 3,
  });
  const v5 = parseModelConfig({
    model_type: "llama",
    ...base,
    rope_parameters: { rope_type: "linear", factor: 2, rope_theta: 1e6 },
  }, "c");
  assert.equal(v5.ropeTheta, 1e6);
  assert.deepEqual(v5.ropeScaling, { type: "linear", factor: 2 });
  expectError(
    { model_type: "llama", ...base, rope_scaling: { type: "yarn", factor: 4 } },
    "rope_scaling.rope_type",
    /"yarn" is not supported/,
  );
  expectError(
    { model_type: "llama", ...base, rope_scaling: { type: "linear" } },
    "rope_scaling.factor",
    /missing/,
  );
  expectError(
    {
      model_type: "llama",
      ...base,
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
    },
    "rope_scaling.original_max_position_embeddings",
    /missing/,
  );
  expectError(
    { model_type: "llama", ...base, rope_scaling: "linear" },
    "rope_scaling",
    /expected an object/,
  );
});

Deno.test("mistral: 8 KV heads by default, sliding window 4096 unless null, no biases", () => {
  const c = parseModelConfig({ model_type: "mistral", ...base, attention_bias: true }, "c");
  assert.equal(c.numKeyValueHeads, 8);
  assert.equal(c.slidingWindow, 4096);
  assert.equal(c.maxPositionEmbeddings, 131072);
  assert.equal(c.attentionBias, false);
  assert.equal(c.mlpBias, false);
  const v3 = parseModelConfig({
    model_type: "mistral",
    ...base,
    num_key_value_heads: 2,
    sliding_window: null,
    rope_theta: 1e6,
  }, "c");
  assert.equal(v3.slidingWindow, null);
  assert.equal(v3.numKeyValueHeads, 2);
  assert.equal(v3.ropeTheta, 1e6);
});

Deno.test("qwen2: q/k/v bias always, sliding window only with use_sliding_window", () => {
  const c = parseModelConfig({
    model_type: "qwen2",
    ...base,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
    sliding_window: 32768,
    use_sliding_window: false,
    rope_theta: 1000000.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
  }, "c");
  assert.equal(c.attentionBias, true);
  assert.equal(c.qkNorm, false);
  assert.equal(c.slidingWindow, null);
  assert.equal(c.tieWordEmbeddings, true);
  assert.deepEqual(c.eosTokenIds, [151645]);
  assert.equal(c.maxPositionEmbeddings, 32768);
  const sw = parseModelConfig({
    model_type: "qwen2",
    ...base,
    num_key_value_heads: 8,
    use_sliding_window: true,
    sliding_window: 1024,
  }, "c");
  assert.equal(sw.slidingWindow, 1024);
  const bare = parseModelConfig({ model_type: "qwen2", ...base, num_attention_heads: 32 }, "c");
  assert.equal(bare.numKeyValueHeads, 32); // transformers' default
  assert.equal(bare.headDim, 8);
  assert.equal(bare.bosTokenId, null);
  assert.deepEqual(bare.eosTokenIds, []);
});

Deno.test("qwen3: qk norm, head_dim 128 by default, attention_bias honoured", () => {
  const c = parseModelConfig({ model_type: "qwen3", ...base, num_key_value_heads: 4 }, "c");
  assert.equal(c.qkNorm, true);
  assert.equal(c.headDim, 128);
  assert.equal(c.attentionBias, false);
  const d = parseModelConfig({
    model_type: "qwen3",
    ...base,
    num_key_value_heads: 4,
    head_dim: 64,
    attention_bias: true,
  }, "c");
  assert.equal(d.headDim, 64);
  assert.equal(d.attentionBias, true);
});

Deno.test("invalid configs name the file and field", () => {
  for (const key of Object.keys(base)) {
    const raw: Record<string, unknown> = { model_type: "llama", ...base };
    delete raw[key];
    expectError(raw, key, /is missing; expected a positive integer/);
  }
  expectError({ model_type: "llama", ...base, hidden_size: "64" }, "hidden_size", /"64"/);
  expectError(
    { model_type: "llama", ...base, num_hidden_layers: 0 },
    "num_hidden_layers",
    /positive/,
  );
  expectError(
    { model_type: "llama", ...base, num_key_value_heads: 3 },
    "num_key_value_heads",
    /does not divide/,
  );
  expectError(
    { model_type: "llama", ...base, rms_norm_eps: -1 },
    "rms_norm_eps",
    /positive number/,
  );
  expectError(
    { model_type: "llama", ...base, tie_word_embeddings: "yes" },
    "tie_word_embeddings",
    /true or false/,
  );
  expectError({ model_type: "llama", ...base, eos_token_id: [2, "x"] }, "eos_token_id", /token id/);
  expectError({ model_type: "llama", ...base, hidden_act: "gelu" }, "hidden_act", /silu only/);
  expectError(
    { model_type: "gemma", ...base },
    "model_type",
    /'gemma' is not supported; supported model types: llama, mistral, qwen2, qwen3/,
  );
  expectError({ ...base }, "model_type", /missing; expected one of llama/);
  expectError([], null, /not a JSON object/);
  assert.equal(
    parseModelConfig({ model_type: "llama", ...base, hidden_act: "swish" }, "c").hiddenAct,
    "silu",
  );
});
