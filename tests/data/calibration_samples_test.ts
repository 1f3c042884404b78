import { assertEquals, assertNotEquals, assertRejects } from "../model/_assert.ts";
import { loadCalibrationSamples } from "../../src/data/calibration_samples.ts";
import { loadEvaluationWindows } from "../../src/data/evaluation_windows.ts";
import { DatasetError } from "../../src/data/dataset_error.ts";
import { loadTokenizer } from "../../src/io/tokenizer.ts";
import { SafetensorsFile } from "../../src/io/safetensors_read.ts";

const SHARED = new URL("../../../shared/", import.meta.url).pathname;
const MODEL = `${SHARED}models/stories260K`;

/** One id per character (code point + 10), BOS 1: makes expected samples easy to write. */
const charTokenizer = {
  bosId: 1 as number | null,
  encode: (text: string) => [...text].map((c) => c.codePointAt(0)! + 10),
};

async function tempFile(name: string, content: string | Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "llmc_data_" });
  const path = `${dir}/${name}`;
  if (typeof content === "string") await Deno.writeTextFile(path, content);
  else await Deno.writeFile(path, content);
  return path;
}

async function removeFile(path: string) {
  await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
}

Deno.test("plain text: first N windows of BOS + L-1 tokens", async () => {
  const path = await tempFile("calib.txt", "abcdefghij");
  try {
    const s = await loadCalibrationSamples({
      path,
      tokenizer: charTokenizer,
      numSamples: 2,
      maxSeqLength: 4,
    });
    const c = (ch: string) => ch.codePointAt(0)! + 10;
    assertEquals(s.map((x) => [...x]), [[1, c("a"), c("b"), c("c")], [1, c("d"), c("e"), c("f")]]);
  } finally {
    await removeFile(path);
  }
});

Deno.test("plain text: seeded shuffle is deterministic and draws from all windows", async () => {
  const path = await tempFile("calib.txt", "abcdefghijklmnopqrstuvwxyz".repeat(4));
  try {
    const args = {
      path,
      tokenizer: charTokenizer,
      numSamples: 5,
      maxSeqLength: 5,
      shuffle: true,
      seed: 7,
    };
    const a = await loadCalibrationSamples(args);
    const b = await loadCalibrationSamples(args);
    assertEquals(a, b);
    const first = await loadCalibrationSamples({ ...args, shuffle: false });
    assertNotEquals(a, first);
  } finally {
    await removeFile(path);
  }
});

Deno.test("JSONL: one sample per record, BOS prepended, truncated", async () => {
  const path = await tempFile(
    "calib.jsonl",
    '{"text": "ab"}\n\n{"text": "abcdefgh", "other": 1}\n{"text": "xyz"}\n',
  );
  try {
    const s = await loadCalibrationSamples({
      path,
      tokenizer: charTokenizer,
      numSamples: 2,
      maxSeqLength: 4,
    });
    assertEquals(s.map((x) => [...x]), [[1, 107, 108], [1, 107, 108, 109]]);
  } finally {
    await removeFile(path);
  }
});

Deno.test("JSONL: custom text field", async () => {
  const path = await tempFile("calib.jsonl", '{"content": "a"}\n');
  try {
    const s = await loadCalibrationSamples({
      path,
      tokenizer: charTokenizer,
      numSamples: 1,
      maxSeqLength: 8,
      textField: "content",
    });
    assertEquals([...s[0]], [1, 107]);
  } finally {
    await removeFile(path);
  }
});

Deno.test("errors name the file (and the line)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llmc_data_" });
  try {
    const tokenizer = charTokenizer;
    const base = { tokenizer, numSamples: 1, maxSeqLength: 4 };
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    await assertRejects(
      () => loadCalibrationSamples({ ...base, path: `${dir}/empty.txt` }),
      DatasetError,
      `${dir}/empty.txt: the dataset file is empty`,
    );
    await Deno.writeFile(`${dir}/bad.txt`, new Uint8Array([0x61, 0xff, 0x62]));
    await assertRejects(
      () => loadCalibrationSamples({ ...base, path: `${dir}/bad.txt` }),
      DatasetError,
      "not valid UTF-8",
    );
    await Deno.writeTextFile(`${dir}/short.txt`, "abcdef");
    await assertRejects(
      () => loadCalibrationSamples({ ...base, numSamples: 3, path: `${dir}/short.txt` }),
      DatasetError,
      `${dir}/short.txt: 6 tokens make only 2 samples of 4; 3 samples need 9 tokens`,
    );
    await Deno.writeTextFile(`${dir}/missing.jsonl`, '{"text": "a"}\n{"txt": "b"}\n');
    await assertRejects(
      () => loadCalibrationSamples({ ...base, numSamples: 2, path: `${dir}/missing.jsonl` }),
      DatasetError,
      `${dir}/missing.jsonl:2: column 'text' is missing (columns: txt)`,
    );
    await Deno.writeTextFile(`${dir}/broken.jsonl`, '{"text": "a"}\n{"text": \n');
    await assertRejects(
      () => loadCalibrationSamples({ ...base, path: `${dir}/broken.jsonl` }),
      DatasetError,
      `${dir}/broken.jsonl:2: not a JSON value`,
    );
    await Deno.writeTextFile(`${dir}/few.jsonl`, '{"text": "a"}\n');
    await assertRejects(
      () => loadCalibrationSamples({ ...base, numSamples: 2, path: `${dir}/few.jsonl` }),
      DatasetError,
      "1 records, but 2 calibration samples were requested",
    );
    await assertRejects(
      () => loadCalibrationSamples({ ...base, path: `${dir}/nope.txt` }),
      DatasetError,
      `${dir}/nope.txt: cannot read`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("evaluation windows of the eval file start with golden ids_c", async () => {
  const tokenizer = await loadTokenizer(MODEL);
  const windows = await loadEvaluationWindows({
    path: `${SHARED}data/tinystories_eval.txt`,
    tokenizer,
    seqLen: 256,
    windows: 40,
  });
  assertEquals(windows.length, 40);
  const golden = await SafetensorsFile.open(`${SHARED}golden/stories260K_golden.safetensors`);
  try {
    const idsC = Int32Array.from((await golden.readTyped("ids_c")) as BigInt64Array, Number);
    assertEquals(windows[0], idsC);
  } finally {
    golden.close();
  }
  for (const w of windows) {
    assertEquals(w.length, 256);
    assertEquals(w[0], 1);
  }
  // The calib file follows the same convention.
  const calib = await loadCalibrationSamples({
    path: `${SHARED}data/tinystories_calib.txt`,
    tokenizer,
    numSamples: 64,
    maxSeqLength: 256,
  });
  assertEquals(calib.length, 64);
  await assertRejects(
    () =>
      loadEvaluationWindows({
        path: `${SHARED}data/tinystories_eval.txt`,
        tokenizer,
        seqLen: 256,
        windows: 100000,
      }),
    DatasetError,
    "windows need",
  );
});

Deno.test("unshuffled samples tokenize only a prefix of the file, with the whole file's ids", async () => {
  const tokenizer = await loadTokenizer(MODEL);
  const path = `${SHARED}data/tinystories_calib.txt`;
  const whole = tokenizer.encode(await Deno.readTextFile(path), { addSpecialTokens: false });
  let longest = 0;
  let encoded = 0;
  // Both paths: the one-encode newline cut (stories260K's tokenizer allows
  // it) and the general double encode.
  const counting = (newlineCutIsExact: boolean) => ({
    bosId: tokenizer.bosId,
    newlineCutIsExact,
    encode(text: string, options?: { addSpecialTokens?: boolean }) {
      longest = Math.max(longest, text.length);
      encoded += text.length;
      return tokenizer.encode(text, options);
    },
  });
  assertEquals(tokenizer.newlineCutIsExact, true);
  const text = await Deno.readTextFile(path);
  const cases = [[64, 256, true], [64, 256, false], [3, 17, true], [3, 17, false], [1, 2, true]];
  for (const [numSamples, maxSeqLength, cut] of cases as Array<[number, number, boolean]>) {
    longest = 0;
    encoded = 0;
    const samples = await loadCalibrationSamples({
      path,
      tokenizer: counting(cut),
      numSamples,
      maxSeqLength,
    });
    const per = maxSeqLength - 1;
    assertEquals(samples.length, numSamples);
    for (let s = 0; s < numSamples; s++) {
      assertEquals(samples[s][0], 1);
      assertEquals(Array.from(samples[s].subarray(1)), whole.slice(s * per, (s + 1) * per));
    }
    assertNotEquals(longest, text.length, `${numSamples}×${maxSeqLength} read only a prefix`);
    // The cut path encodes each character about once plus the first 4096 (the
    // rate probe); the general path about twice and more.
    if (cut && numSamples === 64) {
      const needChars = whole.slice(0, numSamples * per).length * 2.5;
      assertEquals(encoded < needChars, true, `encoded ${encoded} characters`);
    }
  }
  // Asking for more than the file has still tokenizes all of it and says how much there is.
  await assertRejects(
    () => loadCalibrationSamples({ path, tokenizer, numSamples: 100000, maxSeqLength: 256 }),
    DatasetError,
    `${whole.length} tokens`,
  );
});

Deno.test("the newline cut gives the whole text's ids on adversarial text, and falls back without newlines", async () => {
  const tokenizer = await loadTokenizer(MODEL);
  const story = (await Deno.readTextFile(`${SHARED}data/tinystories_calib.txt`)).slice(0, 60000);
  const texts: Record<string, string> = {
    // Newlines next to spaces, tabs, CRs, accents, combining marks, emoji, CJK and bytes the
    // vocabulary lacks; words far longer than any token; runs of blank lines.
    unicode: story.replaceAll(". ", ". \n ").replaceAll("\n\n", "\r\n\t\n\u0301é😀 漢字\n\n\n")
      .replaceAll("the", "ñ\u200d🧑‍🚀") + "\n",
    longWords: story.replaceAll(" ", "").replaceAll(".", ".\n" + "x".repeat(300)),
    noNewline: story.replaceAll("\n", " "),
  };
  for (const [name, text] of Object.entries(texts)) {
    const whole = tokenizer.encode(text, { addSpecialTokens: false });
    const path = await tempFile("calib.txt", text);
    let encodes = 0;
    const counting = {
      bosId: tokenizer.bosId,
      newlineCutIsExact: true,
      encode(t: string, options?: { addSpecialTokens?: boolean }) {
        encodes++;
        return tokenizer.encode(t, options);
      },
    };
    try {
      for (const [numSamples, maxSeqLength] of [[40, 129], [7, 33], [2, 2000], [1, 2]]) {
        encodes = 0;
        const samples = await loadCalibrationSamples({
          path,
          tokenizer: counting,
          numSamples,
          maxSeqLength,
        });
        const per = maxSeqLength - 1;
        const got = samples.flatMap((s) => Array.from(s.subarray(1)));
        assertEquals(
          got,
          whole.slice(0, numSamples * per),
          `${name} ${numSamples}×${maxSeqLength}`,
        );
        // Without a newline to cut at, the general path's probe and two encodes run.
        if (name === "noNewline") assertEquals(encodes >= 3, true, `${name}: ${encodes} encodes`);
      }
    } finally {
      await removeFile(path);
    }
  }
});
