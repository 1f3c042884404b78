/**
 * The inverse of the marlin-24 layout (§1.9.6), for end-to-end tests:
 * marlin-24 is write-only upstream, so a checkpoint is checked by unpacking
 * `weight_packed`, undoing the 1024-entry permutation and the 16×16 tiling,
 * decoding CUTLASS's reordered `meta`, and undoing the scale permutation.
 * Used by the unit tests (tests/compress/marlin_24_test.ts) and the end-to-end test.
 *
 * @module
 */

import { marlin24Permutations } from "../../src/compress/marlin_24.ts";

/** Where CUTLASS's reordering puts meta element (r, c) of an [m, metaCols] matrix. */
function metaOffsets(m: number, metaCols: number): Int32Array {
  const out = new Int32Array(m * metaCols);
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < metaCols; c++) {
      let dr = Math.floor(r / 64) * 64 + (r % 2) * 2 + Math.floor((r % 8) / 4) +
        Math.floor(((r % 32) % 4) / 2) * 32 + Math.floor((r % 64) / 8) * 4;
      let dc = c;
      const t = dr % 2 === 0 && dc % 2 === 1 ? 1 : 0;
      const b = dr % 2 === 1 && dc % 2 === 0 ? 1 : 0;
      dr += t - b;
      dc -= t - b;
      out[r * metaCols + c] = Math.floor(dc / 2) * m * 2 + dr * 2 + (dc % 2);
    }
  }
  return out;
}

/** f16 bits → number. */
function f16(h: number): number {
  const e = (h >> 10) & 31;
  const f = h & 1023;
  const v = e === 0 ? f * 2 ** -24 : (1024 + f) * 2 ** (e - 25);
  return h & 0x8000 ? -v : v;
}

/** A decoded marlin-24 module. */
export interface DecodedMarlin24 {
  /** Signed integer codes, dense `[out, in]` (zeros where 2:4 pruned). */
  readonly codes: Float32Array;
  /** Scales `[out, groups]`, row-major. */
  readonly scale: Float32Array;
  /** codes × scale, `[out, in]`. */
  readonly weight: Float32Array;
}

/**
 * Decodes one marlin-24 module.
 *
 * @param packed `weight_packed` (I32 `[in/32, out·16/pf]`)
 * @param meta `meta` (I16 `[in/32, 2·out]`)
 * @param scalePacked `scale_packed` (F16 bits `[groups, out]`)
 * @param shape `[out, in]`
 * @param bits 4 or 8
 * @param groupSize the group size, or null for channel-wise
 * @returns codes, scales and the dequantized weight
 */
export function decodeMarlin24(
  packed: Int32Array,
  meta: Int16Array,
  scalePacked: Uint16Array,
  [out, inF]: readonly [number, number],
  bits: number,
  groupSize: number | null,
): DecodedMarlin24 {
  const perms = marlin24Permutations(bits);
  const pf = 32 / bits;
  const sizeK = inF / 2;
  const permuted = new Int32Array(sizeK * out);
  for (let k = 0; k < packed.length; k++) {
    for (let i = 0; i < pf; i++) {
      permuted[k * pf + i] = (packed[k] >>> (bits * i)) & ((1 << bits) - 1);
    }
  }
  const tiled = new Int32Array(permuted.length);
  for (let c = 0; c < tiled.length; c += 1024) {
    for (let t = 0; t < 1024; t++) tiled[c + perms.weight[t]] = permuted[c + t];
  }
  const sparse = new Float32Array(out * sizeK);
  for (let kk = 0; kk < sizeK; kk++) {
    for (let n = 0; n < out; n++) {
      const v = tiled[
        Math.floor(kk / 16) * out * 16 + Math.floor(n / 16) * 256 + (kk % 16) * 16 + (n % 16)
      ];
      sparse[n * sizeK + kk] = v - (1 << (bits - 1));
    }
  }
  const metaCols = inF / 16;
  const off = metaOffsets(out, metaCols);
  const codes = new Float32Array(out * inF);
  for (let r = 0; r < out; r++) {
    for (let c = 0; c < metaCols; c++) {
      const word = meta[off[r * metaCols + c]] & 0xffff;
      for (let q = 0; q < 4; q++) {
        const group = r * (inF / 4) + c * 4 + q;
        codes[group * 4 + ((word >> (4 * q)) & 3)] = sparse[group * 2];
        codes[group * 4 + ((word >> (4 * q + 2)) & 3)] = sparse[group * 2 + 1];
      }
    }
  }
  const groups = groupSize === null ? 1 : inF / groupSize;
  const perm = groupSize !== null && groupSize < sizeK ? perms.scaleGroup : perms.scaleChannel;
  const sT = new Float32Array(scalePacked.length);
  for (let c = 0; c < sT.length; c += 64) {
    for (let t = 0; t < 64; t++) sT[c + perm[t]] = f16(scalePacked[c + t]);
  }
  const scale = new Float32Array(out * groups);
  for (let g = 0; g < groups; g++) {
    for (let n = 0; n < out; n++) scale[n * groups + g] = sT[g * out + n];
  }
  const weight = codes.map((v, i) => {
    const n = Math.floor(i / inF);
    const g = groupSize === null ? 0 : Math.floor((i % inF) / groupSize);
    return v * scale[n * groups + g];
  });
  return { codes, scale, weight };
}
