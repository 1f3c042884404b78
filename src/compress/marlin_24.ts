/**
 * `marlin-24` (§1.9.6), write-only: 2:4-sparse symmetric int4/int8
 * weight-only modules in the layout of vLLM's Marlin 2:4 kernel (fp16).
 *
 * ```
 * s ← weight_scale as F16;  Wq ← quantize(W as F16, s)            (F16 arithmetic)
 * (vals [out, in/2], meta [out, in/16] I16) ← CUTLASS 2:4 compression of Wq
 * weight_packed ← marlin_pack(valsᵀ + 2^(N−1))                     I32 [in/32, out·16/pf]
 * scale_packed  ← sᵀ with the 2:4 scale permutation                 F16 [groups, out]
 * meta          ← meta reinterpreted row-major                      I16 [in/32, 2·out]
 * ```
 *
 * Followed from compressed-tensors 0.13.0's `Marlin24Compressor`,
 * `sparse_semi_structured_from_dense_cutlass` and `get_permutations_24`.
 * One ambiguity resolved as the code does, not as the prose says: the group
 * scale permutation is used when `group_size < size_k` where `size_k` is the
 * row count of the *transposed compressed* weight, i.e. in/2 (so a weight with
 * in = 256 and group 128 takes the channel-wise identity permutation).
 *
 * @module
 */

import { roundToF16 } from "../io/floats.ts";
import { rounderFor, roundF16InPlace } from "../quant/compute_dtype.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import { weightQParamShape } from "../quant/qparam_shape.ts";
import { quantize } from "../quant/quantize.ts";
import { quantizedRange } from "../quant/qparams.ts";
import type { WeightQParams } from "../quant/quantize.ts";
import { int32Tensor, makeTensor, tensorFromValues } from "./compressed_tensor.ts";
import type { CompressedTensor } from "./compressed_tensor.ts";
import { CompressionError } from "./errors.ts";

/**
 * The Marlin 2:4 permutations of compressed-tensors' `get_permutations_24`.
 *
 * @param bits 4 or 8
 * @returns the 1024-entry weight permutation, the 64-entry group scale
 *   permutation and the 64-entry channel scale permutation (identity)
 * @throws {CompressionError} for other bit widths
 * @example
 * ```ts
 * import { marlin24Permutations } from "./marlin_24.ts";
 * const { weight, scaleGroup } = marlin24Permutations(4);
 * weight.length; // 1024
 * scaleGroup.slice(0, 8); // [0, 4, 1, 5, 2, 6, 3, 7]
 * ```
 */
export function marlin24Permutations(bits: number): {
  weight: Int32Array;
  scaleGroup: Int32Array;
  scaleChannel: Int32Array;
} {
  let interleave: number[];
  if (bits === 4) interleave = [0, 2, 4, 6, 1, 3, 5, 7];
  else if (bits === 8) interleave = [0, 2, 1, 3];
  else throw new CompressionError(`marlin-24 supports 4 or 8 bits, got ${bits}`);
  const list: number[] = [];
  for (let i = 0; i < 32; i++) {
    const perm1: number[] = [];
    const col = Math.floor(i / 4);
    const colO = Math.floor(col / 2);
    for (const block of [0, 1]) {
      for (const row of [2 * (i % 4), 2 * (i % 4) + 1, 2 * (i % 4 + 4), 2 * (i % 4 + 4) + 1]) {
        perm1.push(16 * row + colO * 256 + 8 * (col % 2) + 4 * block);
      }
    }
    for (let j = 0; j < 4; j++) for (const p of perm1) list.push(p + j);
  }
  const weight = new Int32Array(1024);
  const w = interleave.length;
  for (let r = 0; r < 1024 / w; r++) {
    for (let k = 0; k < w; k++) weight[r * w + k] = list[r * w + interleave[k]];
  }
  const scaleGroup = new Int32Array(64);
  const scaleChannel = new Int32Array(64);
  const order = [0, 4, 1, 5, 2, 6, 3, 7];
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 8; j++) {
      scaleGroup[i * 8 + j] = i * 8 + order[j];
      scaleChannel[i * 8 + j] = 8 * i + j;
    }
  }
  return { weight, scaleGroup, scaleChannel };
}

/**
 * CUTLASS's choice of the two stored positions of a group of 4, by which of
 * its elements are nonzero (bit j for element j): `idx0 | idx1 << 2`, the
 * group's 4 metadata bits. Tabled once from the Espresso-minimized formula
 * of `sparse_semi_structured_from_dense_cutlass`, which reads only elements
 * 0, 1 and 3.
 */
const CUTLASS_META = (() => {
  const table = new Uint8Array(16);
  for (let nz = 0; nz < 16; nz++) {
    const m0 = (nz & 1) !== 0;
    const m1 = (nz & 2) !== 0;
    const m3 = (nz & 8) !== 0;
    const expr0 = m0 && m1;
    const expr1 = !m0 && m1;
    const expr2 = !m0 && !m1;
    const idx0 = (expr1 ? 1 : 0) | (expr2 ? 2 : 0);
    const idx1 = (expr0 || expr2 || m3 ? 1 : 0) | (expr1 || !m1 ? 2 : 0);
    table[nz] = idx0 | (idx1 << 2);
  }
  return table;
})();

/**
 * Scatters row-major metadata `[m, metaCols]` into CUTLASS's
 * ColumnMajorInterleaved<2> order (64-row super-tiles, 2×2 swizzle).
 */
function cutlassMetaOrder(meta: Int16Array, m: number, metaCols: number): Int16Array {
  const reordered = new Int16Array(m * metaCols);
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < metaCols; c++) {
      let dr = Math.floor(r / 64) * 64 + (r % 2) * 2 + Math.floor((r % 8) / 4) +
        Math.floor(((r % 32) % 4) / 2) * 32 + Math.floor((r % 64) / 8) * 4;
      let dc = c;
      const topright = dr % 2 === 0 && dc % 2 === 1 ? 1 : 0;
      const bottomleft = dr % 2 === 1 && dc % 2 === 0 ? 1 : 0;
      dr += topright - bottomleft;
      dc -= topright - bottomleft;
      reordered[Math.floor(dc / 2) * m * 2 + dr * 2 + (dc % 2)] = meta[r * metaCols + c];
    }
  }
  return reordered;
}

/**
 * CUTLASS 2:4 compression of a dense `[m, k]` matrix (fp16 meta layout):
 * two kept values per group of 4 and the reordered I16 metadata.
 *
 * @param dense row-major values
 * @param m rows (multiple of 32)
 * @param k columns (multiple of 16)
 * @returns `sparse` `[m, k/2]` (the same array type as `dense`) and `meta`
 *   `[m, k/16]` (CUTLASS interleaved order)
 * @example
 * ```ts
 * import { cutlassCompress24 } from "./marlin_24.ts";
 * const dense = new Float32Array(32 * 16);
 * dense[1] = 3; dense[3] = -2; // row 0, group 0 keeps positions 1 and 3
 * cutlassCompress24(dense, 32, 16).sparse.slice(0, 2); // [3, -2]
 * ```
 */
export function cutlassCompress24<T extends Float32Array | Int32Array>(
  dense: T,
  m: number,
  k: number,
): { sparse: T; meta: Int16Array } {
  const metaCols = k / 16;
  const sparse =
    (dense instanceof Int32Array
      ? new Int32Array((m * k) / 2)
      : new Float32Array((m * k) / 2)) as T;
  const meta = new Int16Array(m * metaCols);
  for (let r = 0, g = 0; r < m; r++) {
    for (let c = 0; c < metaCols; c++) {
      let word = 0;
      for (let q = 0; q < 4; q++, g += 4) {
        const nonzero = +(dense[g] !== 0) | (+(dense[g + 1] !== 0) << 1) |
          (+(dense[g + 3] !== 0) << 3);
        const bits = CUTLASS_META[nonzero];
        sparse[g / 2] = dense[g + (bits & 3)];
        sparse[g / 2 + 1] = dense[g + (bits >> 2)];
        word |= bits << (4 * q);
      }
      meta[r * metaCols + c] = word; // wraps to int16 like torch's int16 shifts
    }
  }
  return { sparse, meta: cutlassMetaOrder(meta, m, metaCols) };
}

/** The weight rounded to float16 (the Marlin kernel's fp16 weight). */
function f16Weight(weight: Float32Array): Float32Array {
  const toF16 = rounderFor("F16");
  const w16 = new Float32Array(weight.length);
  for (let i = 0; i < w16.length; i++) w16[i] = toF16(weight[i]);
  return w16;
}

/** 2^52 + 2^51: adding and subtracting it rounds a double below 2^51 to an integer, ties to even. */
const RNE_MAGIC = 6755399441055744;

/**
 * Row `r` of `quantize(f16Weight(weight), shape, { scale: s16 }, args, { dtype: "F16" })`
 * for scales in runs (channel, or groups of `cols / groups` columns), as
 * integer codes: `rne(clamp(f16(f16(w) / s)))`, the same operations value
 * by value, each op's float32 rounding the store into `t` and its float16
 * rounding a pass over `t`. A NaN passes the clamp; its code is stored as
 * `q_min` ({@link intCodes}).
 */
function f16IntCodeRow(
  weight: Float32Array,
  r: number,
  cols: number,
  s16: Float32Array,
  groups: number,
  qMin: number,
  qMax: number,
  t: Float32Array,
  tBits: Int32Array,
  codes: Int32Array,
): void {
  const run = cols / groups;
  for (let g = 0; g < groups; g++) {
    const s = s16[r * groups + g];
    const from = r * cols + g * run;
    const to = g * run;
    for (let i = 0; i < run; i++) t[i] = weight[from + i];
    roundF16InPlace(t, tBits, 0, run);
    for (let i = 0; i < run; i++) t[i] = t[i] / s;
    roundF16InPlace(t, tBits, 0, run);
    for (let i = 0; i < run; i++) {
      const x = Math.min(Math.max(t[i], qMin), qMax);
      codes[to + i] = x === x ? ((x + RNE_MAGIC) - RNE_MAGIC) | 0 : qMin;
    }
  }
}

/**
 * Integer codes of `quantize`'s code values. A NaN code becomes `q_min`:
 * like NaN, it is nonzero (kept by the 2:4 compression) and packs as the
 * unsigned value 0 (`(NaN + offset) << shift` is 0 in JavaScript, as
 * `q_min + offset` is), so the packed tensors come out the same; −0 is 0.
 */
function intCodes(values: Float32Array, qMin: number): Int32Array {
  const codes = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = values[i] === values[i] ? values[i] : qMin;
  return codes;
}

function checkPreconditions(
  prefix: string,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
): void {
  const fail = (what: string): never => {
    throw new CompressionError(`${prefix}: marlin-24 ${what}`);
  };
  if (args.type !== "int" || (args.numBits !== 4 && args.numBits !== 8)) {
    fail(`needs int4 or int8 weights, got ${args.type}${args.numBits}`);
  }
  if (!args.symmetric) fail("needs symmetric weights");
  if (args.strategy !== "channel" && args.strategy !== "group") {
    fail(`needs channel or group quantization, got ${args.strategy}`);
  }
  if (args.strategy === "group" && args.groupSize !== 128) {
    fail(`needs group_size 128, got ${args.groupSize}`);
  }
  if (qparams.globalScale !== undefined && qparams.globalScale !== null) {
    fail("has no global scale");
  }
  const [out, inF] = shape;
  if (out % 32 !== 0) fail(`needs out_features divisible by 32 (CUTLASS metadata), got ${out}`);
  if (inF % 32 !== 0) {
    fail(`needs in_features divisible by 32 (16-row Marlin tiles of in/2), got ${inF}`);
  }
  if (((inF / 2) * out) % 1024 !== 0) {
    fail(`needs (in/2)·out divisible by 1024, got ${(inF / 2) * out}`);
  }
  const groups = weightQParamShape(shape, args, prefix)[1];
  if ((groups * out) % 64 !== 0) fail(`needs groups·out divisible by 64, got ${groups * out}`);
}

/**
 * Compresses one 2:4-sparse Linear weight in the marlin-24 layout.
 *
 * @param prefix the module name
 * @param weight the dense weight `[out, in]`, already 2:4 sparse
 * @param shape `[out, in]`
 * @param args symmetric int4/int8 channel or group-128 weight args
 * @param qparams the weight scales (g_idx allowed)
 * @returns `weight_packed` (I32), `scale_packed` (F16), `meta` (I16)
 * @throws {CompressionError} when a precondition fails or a group of 4 quantized values has fewer than 2 zeros
 * @example
 * ```ts
 * import { compressMarlin24 } from "./marlin_24.ts";
 * import { parseQuantizationArgs } from "../quant/args.ts";
 * const a = parseQuantizationArgs({ num_bits: 4, strategy: "channel" }, "w");
 * const w = new Float32Array(64 * 32); // all zero: trivially 2:4
 * const t = compressMarlin24("m", w, [64, 32], a, { scale: new Float32Array(64).fill(1) });
 * t.map((x) => x.shape); // [[1, 128], [1, 64], [1, 128]]
 * ```
 */
export function compressMarlin24(
  prefix: string,
  weight: Float32Array,
  shape: readonly [number, number],
  args: QuantizationArgs,
  qparams: WeightQParams,
): CompressedTensor[] {
  checkPreconditions(prefix, shape, args, qparams);
  const [out, inF] = shape;
  const bits = args.numBits;
  const qShape = weightQParamShape(shape, args, prefix);
  const groups = qShape[1];
  // The Marlin 2:4 kernel runs in fp16: quantize the fp16 weight with fp16 scales.
  const s16 = qparams.scale.map(roundToF16);
  const [qMin, qMax] = quantizedRange(args);
  // With a g_idx the codes come from `quantize` (columns in any group order).
  const allCodes = qparams.gIdx === undefined || qparams.gIdx === null ? null : intCodes(
    quantize(f16Weight(weight), shape, { scale: s16, gIdx: qparams.gIdx }, args, {
      dtype: "F16",
      where: prefix,
    }),
    qMin,
  );
  // Row by row: the codes, their CUTLASS 2:4 compression (two values and 4
  // metadata bits a group of 4) and the kept values, unsigned, straight into
  // Marlin's tiles: the compressed values transposed (input dimension first)
  // and tiled to [k/16, n/16, 16, 16] → [k/16, 16·n], where tiled index
  // a·16n + b·256 + i·16 + j holds (sparseᵀ)[16a + i, 16b + j] + offset.
  const sizeK = inF / 2;
  const sizeN = out;
  const offset = 1 << (bits - 1);
  const rowLen = sizeN * 16;
  const metaCols = inF / 16;
  const tiled = new Int32Array(sizeK * sizeN);
  const meta = new Int16Array(out * metaCols);
  const t = new Float32Array(inF);
  const tBits = new Int32Array(t.buffer);
  let row: Int32Array = new Int32Array(inF);
  for (let n = 0; n < out; n++) {
    if (allCodes === null) {
      f16IntCodeRow(weight, n, inF, s16, groups, qMin, qMax, t, tBits, row);
    } else row = allCodes.subarray(n * inF, (n + 1) * inF);
    const tileCol = (n >> 4) * 256 + (n & 15);
    for (let c = 0; c < metaCols; c++) {
      // Meta column c covers compressed columns kk = 8c … 8c + 7, one 16-row tile half.
      const tile = (c >> 1) * rowLen + tileCol + (c & 1) * 128;
      let word = 0;
      for (let q = 0; q < 4; q++) {
        const g = c * 16 + q * 4;
        const c0 = row[g], c1 = row[g + 1], c2 = row[g + 2], c3 = row[g + 3];
        // Counted without a branch: where a pruned weight's zeros are is random.
        const zeros = +(c0 === 0) + +(c1 === 0) + +(c2 === 0) + +(c3 === 0);
        if (zeros < 2) {
          throw new CompressionError(
            `${prefix}: marlin-24 needs 2:4-sparse quantized weights; row ${n}, columns ` +
              `${g}…${g + 3} keep ${4 - zeros} nonzero values`,
          );
        }
        const m = CUTLASS_META[+(c0 !== 0) | (+(c1 !== 0) << 1) | (+(c3 !== 0) << 3)];
        tiled[tile + q * 32] = row[g + (m & 3)] + offset;
        tiled[tile + q * 32 + 16] = row[g + (m >> 2)] + offset;
        word |= m << (4 * q);
      }
      meta[n * metaCols + c] = word; // wraps to int16 like torch's int16 shifts
    }
  }
  const perms = marlin24Permutations(bits);
  // Each 1024 chunk permuted, then packed pf values a word.
  const pf = 32 / bits;
  const packed = new Int32Array((sizeK * sizeN) / pf);
  for (let c = 0, w = 0; c < tiled.length; c += 1024) {
    for (let t = 0; t < 1024; t += pf, w++) {
      let word = 0;
      for (let i = 0; i < pf; i++) word |= tiled[c + perms.weight[t + i]] << (bits * i);
      packed[w] = word;
    }
  }
  // Scales: sᵀ [groups, out], permuted in chunks of 64.
  const sT = new Float32Array(groups * out);
  for (let g = 0; g < groups; g++) {
    for (let n = 0; n < out; n++) sT[g * out + n] = s16[n * groups + g];
  }
  const usesGroupPerm = args.strategy === "group" && args.groupSize! < sizeK;
  const sp = usesGroupPerm ? perms.scaleGroup : perms.scaleChannel;
  const scalePacked = new Float32Array(sT.length);
  for (let c = 0; c < sT.length; c += 64) {
    for (let t = 0; t < 64; t++) scalePacked[c + t] = sT[c + sp[t]];
  }
  return [
    int32Tensor(`${prefix}.weight_packed`, [sizeK / 16, rowLen / pf], packed),
    tensorFromValues(`${prefix}.scale_packed`, "F16", [groups, out], scalePacked),
    makeTensor(
      `${prefix}.meta`,
      "I16",
      [inF / 32, 2 * out],
      new Uint8Array(cutlassMetaOrder(meta, out, metaCols).buffer),
    ),
  ];
}
