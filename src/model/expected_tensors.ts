/**
 * The tensors a model must have, by name, shape and dtype, as transformers
 * would build it from config.json; and the check of a checkpoint against
 * them when the model is opened, before any work. Without it, a tensor
 * stored transposed (same element count) passes every reader and fails deep
 * in calibration with a message that names no tensor.
 *
 * Like transformers' `from_pretrained`: a missing required tensor is an
 * error, an unexpected one (e.g. an old `rotary_emb.inv_freq` buffer) only a
 * warning. A tied `lm_head.weight` may be absent; present, it must fit.
 *
 * New architectures (MoE experts, …) add their tensors in
 * {@link expectedTensorShapes} (and `layerTensorShapes` for a decoder layer):
 * the table lives there and nowhere else.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import type { DType } from "../io/dtype.ts";
import { layerTensorShapes } from "./layer_tensors.ts";
import { DecoderModelError } from "./model_error.ts";

/** The dtypes llmc compresses from (a dense checkpoint's weights). */
export const SOURCE_FLOAT_DTYPES: readonly DType[] = Object.freeze(["F32", "F16", "BF16", "F64"]);

/** What the check needs of a checkpoint (an `HfModel` has it). */
export interface TensorListing {
  /** Every tensor name in the checkpoint. */
  tensorNames(): string[];
  /** A tensor's dtype and shape. */
  info(name: string): { readonly dtype: DType; readonly shape: readonly number[] };
}

/** One expected tensor. */
export interface ExpectedTensor {
  /** Its shape. */
  readonly shape: readonly number[];
  /** Whether the checkpoint may leave it out (a tied lm_head). */
  readonly optional: boolean;
}

/**
 * Every tensor a model with this config has, in checkpoint order: the
 * embedding, each decoder layer's tensors, the final norm and lm_head
 * (optional when tied to the embedding).
 *
 * @param config the parsed config.json
 * @returns full tensor name → shape and whether it may be absent
 * @example
 * ```ts ignore
 * import { expectedTensorShapes } from "./expected_tensors.ts";
 * expectedTensorShapes(config).get("model.embed_tokens.weight"); // { shape: [V, H], optional: false }
 * ```
 */
export function expectedTensorShapes(config: ModelConfig): Map<string, ExpectedTensor> {
  const H = config.hiddenSize;
  const out = new Map<string, ExpectedTensor>();
  const required = (name: string, shape: readonly number[]) =>
    out.set(name, { shape, optional: false });
  required("model.embed_tokens.weight", [config.vocabSize, H]);
  for (let k = 0; k < config.numHiddenLayers; k++) {
    for (const [name, shape] of layerTensorShapes(config, k)) required(name, shape);
  }
  required("model.norm.weight", [H]);
  out.set("lm_head.weight", { shape: [config.vocabSize, H], optional: config.tieWordEmbeddings });
  return out;
}

function configSummary(config: ModelConfig): string {
  const moe = config.moe === null
    ? ""
    : `, ${config.moe.numExperts} experts of intermediate size ` +
      `${config.moe.expertIntermediateSize}`;
  return `hidden_size ${config.hiddenSize}, intermediate_size ${config.intermediateSize}, ` +
    `num_attention_heads ${config.numAttentionHeads}, num_key_value_heads ` +
    `${config.numKeyValueHeads}, head_dim ${config.headDim}, vocab_size ${config.vocabSize}${moe}`;
}

/**
 * Checks every tensor of a checkpoint against its config: each required
 * tensor present, with the expected shape and a float dtype; unexpected
 * tensors are reported in one warning.
 *
 * @param model the checkpoint's tensors
 * @param config its config
 * @param where names the model in messages (its folder)
 * @param onWarning receives the note about unexpected tensors
 * @throws {DecoderModelError} naming the tensor, the shape (or dtype) found and the one expected
 * @example
 * ```ts ignore
 * import { checkModelTensors } from "./expected_tensors.ts";
 * const model = await HfModel.open("models/llama");
 * checkModelTensors(model, model.config, model.dir, console.warn);
 * ```
 */
export function checkModelTensors(
  model: TensorListing,
  config: ModelConfig,
  where: string,
  onWarning: (message: string) => void,
): void {
  const expected = expectedTensorShapes(config);
  const present = new Set(model.tensorNames());
  const arch = `a ${config.modelType} model with this config.json (${configSummary(config)})`;
  for (const [name, want] of expected) {
    if (!present.has(name)) {
      if (want.optional) continue;
      throw new DecoderModelError(
        `${where}: ${name}: missing from the checkpoint; ${arch} expects it with shape [${want.shape}]`,
      );
    }
    const { dtype, shape } = model.info(name);
    if (shape.length !== want.shape.length || shape.some((d, i) => d !== want.shape[i])) {
      throw new DecoderModelError(
        `${where}: tensor '${name}' has shape [${shape}]; ${arch} expects [${want.shape}]`,
      );
    }
    if (!SOURCE_FLOAT_DTYPES.includes(dtype)) {
      throw new DecoderModelError(
        `${where}: tensor '${name}' has dtype ${dtype}; expected a dense float checkpoint ` +
          `(${SOURCE_FLOAT_DTYPES.join(", ")})`,
      );
    }
  }
  const unexpected = [...present].filter((n) => !expected.has(n));
  if (unexpected.length > 0) {
    const shown = unexpected.slice(0, 5).join(", ");
    const more = unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : "";
    onWarning(
      `${where}: ${unexpected.length} tensor(s) that a ${config.modelType} model does not use ` +
        `are ignored: ${shown}${more}`,
    );
  }
}
