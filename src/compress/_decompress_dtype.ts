/**
 * The dtype a decompressed weight is computed in: an explicit choice, else
 * the scale tensor's dtype when it is a model float dtype, else F32.
 *
 * @module
 */

import type { CompressedTensor } from "./compressed_tensor.ts";
import type { ModelDType } from "./qparam_tensors.ts";

/** The compute dtype for decompressing a weight whose scale tensor is `scale`. */
export function decompressDType(scale: CompressedTensor, explicit?: ModelDType): ModelDType {
  if (explicit !== undefined) return explicit;
  const d = scale.dtype;
  return d === "BF16" || d === "F16" ? d : "F32";
}
