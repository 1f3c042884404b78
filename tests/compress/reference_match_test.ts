/**
 * Byte-level comparison with the checkpoints llm-compressor 0.9.0.4 /
 * compressed-tensors 0.13.0 wrote for stories260K (../shared/reference):
 * RTN with each folder's recipe, compressed by compressModule, must give the
 * same tensor names, dtypes and shapes, byte-identical scales / zero points /
 * global scales, and codes that differ only by one-step rounding-tie flips
 * (fewer than 1 in 10,000).
 */
import { assert, assertEquals } from "../quant/_assert.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";
import { compressModule } from "../../src/compress/compress_module.ts";
import type { CompressedTensor } from "../../src/compress/compressed_tensor.ts";
import { unpackInt32 } from "../../src/compress/pack_int32.ts";
import { findMatchingScheme } from "../../src/quant/match.ts";
import { inferFormat } from "../../src/quant/format.ts";
import { rtnGlobalScale, rtnQuantizeModule } from "../../src/quant/rtn.ts";
import { fusedGlobalScaleGroups, fuseGlobalScales } from "../../src/quant/fused_global_scales.ts";
import type { QuantizationScheme } from "../../src/quant/scheme.ts";
import {
  llamaModuleTree,
  readReferenceRecipe,
  REFERENCE_FOLDERS,
  SHARED,
} from "../quant/_reference_recipes.ts";

const LAYERS = 5;
const MODEL = new URL("models/stories260K/model.safetensors", SHARED).pathname;

interface FolderResult {
  codes: number;
  flips: number;
}

/** Compares FP8 / packed FP4 codes; counts one-step flips (fails on anything else). */
function compareCodes(
  ours: CompressedTensor,
  ref: Uint8Array,
  refShape: readonly number[],
  name: string,
): FolderResult {
  let flips = 0;
  let codes = 0;
  if (ours.dtype === "F8_E4M3") {
    for (let i = 0; i < ref.length; i++) {
      codes++;
      if (ours.data[i] === ref[i]) continue;
      // adjacent FP8 codes of the same sign differ by one in the low 7 bits
      const sameSign = (ours.data[i] & 0x80) === (ref[i] & 0x80);
      assert(
        sameSign && Math.abs((ours.data[i] & 0x7f) - (ref[i] & 0x7f)) === 1,
        `${name}[${i}]: ${ours.data[i]} vs ${ref[i]}`,
      );
      flips++;
    }
  } else {
    for (let i = 0; i < ref.length; i++) {
      for (const shift of [0, 4]) {
        codes++;
        const a = (ours.data[i] >> shift) & 0xf;
        const b = (ref[i] >> shift) & 0xf;
        if (a === b) continue;
        const ok = ((a & 8) === (b & 8) && Math.abs((a & 7) - (b & 7)) === 1) ||
          ((a & 7) === 0 && (b & 7) <= 1) || ((b & 7) === 0 && (a & 7) <= 1);
        assert(ok, `${name}[${i}] nibble ${shift / 4}: ${a} vs ${b}`);
        flips++;
      }
    }
  }
  assertEquals(refShape, ours.shape, name);
  return { codes, flips };
}

/** Compares packed int codes; counts ±1 flips (fails on anything else). */
function compareIntCodes(
  ours: CompressedTensor,
  ref: Uint8Array,
  shape: [number, number],
  bits: number,
  name: string,
) {
  const a = unpackInt32(new Int32Array(ours.data.slice().buffer), shape[0], shape[1], bits, 1);
  const b = unpackInt32(new Int32Array(ref.slice().buffer), shape[0], shape[1], bits, 1);
  let flips = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    assert(Math.abs(a[i] - b[i]) === 1, `${name}[${i}]: ${a[i]} vs ${b[i]}`);
    flips++;
  }
  return { codes: a.length, flips };
}

const CODE_TENSORS = new Set(["weight_packed", "weight"]);

Deno.test("RTN + compressModule reproduce every llm-compressor reference checkpoint", async () => {
  const original = await SafetensorsFile.open(MODEL);
  try {
    const tree = llamaModuleTree(LAYERS);
    const linears = tree.filter((m) => m.className === "Linear" && m.name !== "lm_head");
    const weights = new Map<string, { w: Float32Array; shape: [number, number] }>();
    for (const m of linears) {
      const info = original.info(`${m.name}.weight`);
      weights.set(m.name, {
        w: await original.readF32(`${m.name}.weight`),
        shape: [info.shape[0], info.shape[1]],
      });
    }
    const report: string[] = [];
    for (const folder of REFERENCE_FOLDERS) {
      const { groups, ignore } = await readReferenceRecipe(folder);
      const ref = await SafetensorsFile.open(
        new URL(`reference/${folder}/model.safetensors`, SHARED).pathname,
      );
      try {
        const schemes = new Map<string, QuantizationScheme | null>();
        for (const m of linears) {
          schemes.set(m.name, findMatchingScheme(m.name, m.className, groups, ignore));
        }
        // NVFP4: global scales first, fused over q/k/v and gate/up (minimum)
        const isTg = (n: string) => schemes.get(n)?.weights?.strategy === "tensor_group";
        const raw = new Map<string, number>();
        for (const m of linears) {
          if (isTg(m.name)) {
            raw.set(m.name, rtnGlobalScale(weights.get(m.name)!.w, schemes.get(m.name)!.weights!));
          }
        }
        const fused = fuseGlobalScales(raw, fusedGlobalScaleGroups(tree, isTg));
        const expectedNames = new Set<string>();
        let codes = 0;
        let flips = 0;
        for (const m of linears) {
          const scheme = schemes.get(m.name)!;
          const { w, shape } = weights.get(m.name)!;
          if (scheme === null) {
            expectedNames.add(`${m.name}.weight`);
            assertEquals(
              await ref.readRaw(`${m.name}.weight`),
              await original.readRaw(`${m.name}.weight`),
              `${folder} ${m.name} unchanged`,
            );
            continue;
          }
          const args = scheme.weights!;
          const rtn = rtnQuantizeModule(w, shape, args, {
            globalScale: fused.get(m.name),
            where: m.name,
          });
          const tensors = compressModule(
            m.name,
            w,
            shape,
            scheme,
            { weight: rtn },
            "F32",
            inferFormat(scheme),
          );
          for (const t of tensors) {
            expectedNames.add(t.name);
            const info = ref.info(t.name);
            const label = `${folder} ${t.name}`;
            assertEquals([info.dtype, info.shape], [t.dtype, t.shape], label);
            const bytes = await ref.readRaw(t.name);
            const param = t.name.slice(m.name.length + 1);
            if (!CODE_TENSORS.has(param)) {
              assertEquals(t.data, bytes, `${label}: byte-identical`);
            } else if (t.dtype === "I32") {
              const r = compareIntCodes(t, bytes, shape, args.numBits, label);
              codes += r.codes;
              flips += r.flips;
            } else {
              const r = compareCodes(t, bytes, info.shape, label);
              codes += r.codes;
              flips += r.flips;
            }
          }
        }
        // every other tensor of the checkpoint is the original, byte for byte
        for (const name of ref.names()) {
          if (expectedNames.has(name)) continue;
          assert(original.has(name), `${folder}: unexpected tensor ${name}`);
          assertEquals(await ref.readRaw(name), await original.readRaw(name), `${folder} ${name}`);
          expectedNames.add(name);
        }
        assertEquals(expectedNames.size, ref.names().length, `${folder}: tensor count`);
        report.push(`${folder}: ${flips} tie flips in ${codes} codes`);
        assert(flips * 10_000 < codes, `${folder}: ${flips} flips of ${codes} codes`);
      } finally {
        ref.close();
      }
    }
    console.log(report.join("\n"));
  } finally {
    original.close();
  }
});
