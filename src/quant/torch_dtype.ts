/**
 * PyTorch dtype names as they appear in `scale_dtype` / `zp_dtype`
 * (`"torch.float8_e4m3fn"`), and their safetensors counterparts.
 *
 * @module
 */

import type { DType } from "../io/dtype.ts";

/** A canonical torch dtype name (what `str(torch.<dtype>)` prints, minus `torch.`). */
export type TorchDtypeName =
  | "float64"
  | "float32"
  | "float16"
  | "bfloat16"
  | "float8_e4m3fn"
  | "float8_e5m2"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

const CANONICAL: Readonly<Record<TorchDtypeName, DType>> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  float8_e4m3fn: "F8_E4M3",
  float8_e5m2: "F8_E5M2",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

// torch exposes these aliases; str() of the dtype prints the canonical name.
const ALIASES: Readonly<Record<string, TorchDtypeName>> = {
  double: "float64",
  float: "float32",
  half: "float16",
  long: "int64",
  int: "int32",
  short: "int16",
};

/**
 * Parses `"torch.xxx"` or `"xxx"` into a canonical torch dtype name, as
 * compressed-tensors' `TorchDtype` field does (aliases such as `torch.half`
 * are accepted and normalised).
 *
 * @param text the dtype string
 * @returns the canonical name, or null when torch has no such dtype llmc supports
 * @example
 * ```ts
 * import { parseTorchDtype } from "./torch_dtype.ts";
 * parseTorchDtype("torch.float8_e4m3fn"); // "float8_e4m3fn"
 * parseTorchDtype("half"); // "float16"
 * parseTorchDtype("torch.complex64"); // null
 * ```
 */
export function parseTorchDtype(text: string): TorchDtypeName | null {
  const name = text.startsWith("torch.") ? text.slice(6) : text;
  if (Object.hasOwn(CANONICAL, name)) return name as TorchDtypeName;
  return Object.hasOwn(ALIASES, name) ? ALIASES[name] : null;
}

/**
 * The safetensors dtype of a torch dtype.
 *
 * @param name a canonical torch dtype name
 * @returns e.g. `"F8_E4M3"` for `float8_e4m3fn`
 * @example
 * ```ts
 * import { torchDtypeToDType } from "./torch_dtype.ts";
 * torchDtypeToDType("uint8"); // "U8"
 * ```
 */
export function torchDtypeToDType(name: TorchDtypeName): DType {
  return CANONICAL[name];
}

/**
 * Whether a torch dtype is a floating-point type.
 *
 * @param name a canonical torch dtype name
 * @returns true for the float and bfloat types, false for ints and bool
 * @example
 * ```ts
 * import { isFloatTorchDtype } from "./torch_dtype.ts";
 * isFloatTorchDtype("float8_e4m3fn"); // true
 * ```
 */
export function isFloatTorchDtype(name: TorchDtypeName): boolean {
  return name.startsWith("float") || name === "bfloat16";
}
