/**
 * Datasets as users bring them: JSON Lines, JSON (list or {"data": [...]}),
 * Parquet, Arrow (the datasets cache), folders with splits, a text column,
 * chat rows rendered with the tokenizer's chat template, seeded shuffling,
 * llm-compressor's named datasets, and Hub dataset ids through a local mock hub.
 */

import { assert, assertEquals, assertRejects } from "../sink/_assert.ts";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  Field,
  List,
  Struct,
  Table,
  tableFromJSON,
  tableToIPC,
  Utf8,
  vectorFromArray,
} from "apache-arrow";
import { tempDirRunner } from "../_shared.ts";
import { loadCalibrationSamples } from "../../src/data/calibration_samples.ts";
import { loadChatTemplate, renderChatTemplate } from "../../src/data/chat_template.ts";
import { DatasetError } from "../../src/data/dataset_error.ts";
import { datasetPreset } from "../../src/data/dataset_presets.ts";
import { readDatasetRows } from "../../src/data/dataset_rows.ts";
import { resolveDataset } from "../../src/data/dataset_source.ts";
import { fileInSplit, parseSplit, sliceSplit } from "../../src/data/dataset_split.ts";
import { startMockHub } from "../hub/_mock_hub.ts";

const withTempDir = tempDirRunner("llmc-datasets-test-");

/** One id per character (code point + 10), BOS 1; remembers every text it encoded. */
function charTokenizer() {
  const seen: string[] = [];
  return {
    seen,
    bosId: 1 as number | null,
    encode: (text: string) => {
      seen.push(text);
      return [...text].map((c) => c.codePointAt(0)! + 10);
    },
  };
}
const ids = (text: string) => [1, ...[...text].map((c) => c.codePointAt(0)! + 10)];
const ROWS = [{ text: "ab", n: 1 }, { text: "cde", n: 2 }, { text: "f", n: 3 }];

function parquet(rows: { text: string; n: number }[]): Uint8Array {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "text", data: rows.map((r) => r.text), type: "STRING" },
      { name: "n", data: rows.map((r) => r.n), type: "INT32" },
    ],
  });
  return new Uint8Array(buf);
}

function arrowStream(rows: unknown[]): Uint8Array {
  return tableToIPC(tableFromJSON(rows as Record<string, unknown>[]), "stream");
}

/** A `messages` column as `datasets` stores it: list<struct<role: string, content: string>>. */
function arrowChatStream(rows: { messages: { role: string; content: string }[] }[]): Uint8Array {
  const message = new Struct([
    new Field("role", new Utf8(), true),
    new Field("content", new Utf8(), true),
  ]);
  const type = new List(new Field("item", message, true));
  const messages = vectorFromArray(rows.map((r) => r.messages), type);
  return tableToIPC(new Table({ messages }), "stream");
}

Deno.test("JSON Lines, JSON list, JSON {data}, Parquet and Arrow give the same rows and samples", async () => {
  await withTempDir(async (dir) => {
    const files: Record<string, string | Uint8Array> = {
      "d.jsonl": ROWS.map((r) => JSON.stringify(r)).join("\n") + "\n",
      "d.json": JSON.stringify(ROWS),
      "data.json": JSON.stringify({ data: ROWS }),
      "d.parquet": parquet(ROWS),
      "d.arrow": arrowStream(ROWS),
    };
    for (const [name, content] of Object.entries(files)) {
      const path = `${dir}/${name}`;
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      assertEquals(await readDatasetRows(path), ROWS, name);
      const s = await loadCalibrationSamples({
        path,
        tokenizer: charTokenizer(),
        numSamples: 3,
        maxSeqLength: 3,
      });
      assertEquals(s.map((x) => [...x]), [ids("ab"), ids("cd"), ids("f")], name);
    }
    await Deno.writeTextFile(`${dir}/bad.json`, '{"rows": []}');
    await assertRejects(
      () => readDatasetRows(`${dir}/bad.json`),
      DatasetError,
      `${dir}/bad.json: expected a JSON list of rows or an object with a "data" list`,
    );
    await Deno.writeTextFile(`${dir}/bad.parquet`, "not parquet");
    await assertRejects(
      () => readDatasetRows(`${dir}/bad.parquet`),
      DatasetError,
      `${dir}/bad.parquet: not a readable Parquet file`,
    );
  });
});

Deno.test("split expressions: names, row and percent slices, files named for splits", () => {
  assertEquals(parseSplit("train"), {
    name: "train",
    start: undefined,
    end: undefined,
    percent: false,
  });
  assertEquals(parseSplit("train_sft[:5%]").end, 5);
  const ten = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  assertEquals(sliceSplit(ten, parseSplit("t[:3]")), [0, 1, 2]);
  assertEquals(sliceSplit(ten, parseSplit("t[2:4]")), [2, 3]);
  assertEquals(sliceSplit(ten, parseSplit("t[-2:]")), [8, 9]);
  assertEquals(sliceSplit(ten, parseSplit("t[10%:30%]")), [1, 2]);
  try {
    parseSplit("train[:x]");
    assert(false, "expected an error");
  } catch (e) {
    assert(e instanceof DatasetError && e.message.includes("train[:x]"), String(e));
  }
  assert(fileInSplit("data/train-00000-of-00001.parquet", "train"));
  assert(fileInSplit("train.jsonl", "train"));
  assert(fileInSplit("train/data-00000-of-00001.arrow", "train"));
  assert(fileInSplit("ultrachat_200k-train_sft.arrow", "train_sft"));
  assert(!fileInSplit("data/train_sft-00000-of-00001.parquet", "train"));
  assert(!fileInSplit("data/test-00000-of-00001.parquet", "train"));
});

Deno.test("a dataset folder: --splits picks the split's files and slice; train by default; --text-column", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/data`);
    await Deno.writeFile(`${dir}/data/train-00000-of-00001.parquet`, parquet(ROWS));
    await Deno.writeTextFile(
      `${dir}/data/test.jsonl`,
      '{"text": "xy", "body": "qrs"}\n{"text": "zz", "body": "tuv"}\n',
    );
    await Deno.writeTextFile(`${dir}/README.md`, "# not data");
    const base = { path: dir, numSamples: 1, maxSeqLength: 8 };
    const first = async (extra: Record<string, unknown>) => {
      const s = await loadCalibrationSamples({ ...base, tokenizer: charTokenizer(), ...extra });
      return [...s[0]];
    };
    assertEquals(await first({}), ids("ab"));
    assertEquals(await first({ split: "test" }), ids("xy"));
    assertEquals(await first({ split: "test[1:]" }), ids("zz"));
    assertEquals(await first({ split: "train[-1:]" }), ids("f"));
    assertEquals(await first({ split: "test", textColumn: "body" }), ids("qrs"));
    await assertRejects(
      () => loadCalibrationSamples({ ...base, tokenizer: charTokenizer(), split: "validation" }),
      DatasetError,
      "no data file belongs to split 'validation'",
    );
    await assertRejects(
      () => loadCalibrationSamples({ ...base, tokenizer: charTokenizer(), textColumn: "body" }),
      DatasetError,
      "column 'body' is missing (columns: text, n); choose one with --text-column",
    );
    await assertRejects(
      () =>
        loadCalibrationSamples({
          ...base,
          tokenizer: charTokenizer(),
          split: "test[:1]",
          numSamples: 2,
        }),
      DatasetError,
      "(split test[:1]): 1 records, but 2 calibration samples were requested",
    );
  });
});

const CHATML = "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const CHAT = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi?" },
  { role: "assistant", content: "Hello." },
];
const CHAT_TEXT = "<|im_start|>system\nBe brief.<|im_end|>\n" +
  "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n";

Deno.test("a ChatML chat template renders messages to the exact string", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ bos_token: { content: "<s>" }, eos_token: "</s>", chat_template: CHATML }),
    );
    const t = await loadChatTemplate(dir);
    assert(t !== null);
    assertEquals(t.specialTokens, { bos_token: "<s>", eos_token: "</s>" });
    assertEquals(renderChatTemplate(t, CHAT), CHAT_TEXT);
    assertEquals(
      renderChatTemplate(t, CHAT.slice(0, 2), { addGenerationPrompt: true }),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n" +
        "<|im_start|>assistant\n",
    );
    // chat_template.jinja wins over tokenizer_config.json, as in transformers.
    await Deno.writeTextFile(
      `${dir}/chat_template.jinja`,
      "{{ bos_token }}{{ messages[0].content }}",
    );
    assertEquals(renderChatTemplate((await loadChatTemplate(dir))!, CHAT), "<s>Be brief.");
    // raise_exception reaches the user as a DatasetError naming the file.
    await Deno.writeTextFile(
      `${dir}/chat_template.jinja`,
      "{{ raise_exception('roles must alternate') }}",
    );
    try {
      renderChatTemplate((await loadChatTemplate(dir))!, CHAT);
      assert(false, "expected an error");
    } catch (e) {
      assert(e instanceof DatasetError && e.message.includes("roles must alternate"), String(e));
      assert(e.message.includes("chat_template.jinja"), e.message);
    }
  });
});

Deno.test("messages rows (JSON Lines and Arrow) are rendered with the chat template, then tokenized", async () => {
  await withTempDir(async (dir) => {
    const rows = [{ messages: CHAT }, { messages: CHAT.slice(1) }];
    await Deno.writeTextFile(`${dir}/chat.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
    await Deno.writeFile(`${dir}/chat-train.arrow`, arrowChatStream(rows));
    const template = { source: CHATML, file: "inline", specialTokens: {} };
    for (const name of ["chat.jsonl", "chat-train.arrow"]) {
      const tok = charTokenizer();
      const s = await loadCalibrationSamples({
        path: `${dir}/${name}`,
        tokenizer: tok,
        numSamples: 1,
        maxSeqLength: 1000,
        chatTemplate: template,
      });
      assertEquals(tok.seen, [CHAT_TEXT], name);
      assertEquals([...s[0]], ids(CHAT_TEXT), name);
    }
    await assertRejects(
      () =>
        loadCalibrationSamples({
          path: `${dir}/chat.jsonl`,
          tokenizer: charTokenizer(),
          numSamples: 1,
          maxSeqLength: 8,
        }),
      DatasetError,
      `${dir}/chat.jsonl:1: the row is a chat (a list of messages), but the tokenizer has no chat template`,
    );
  });
});

Deno.test("shuffling uses the seed: the same seed, the same rows; another seed, another order", async () => {
  await withTempDir(async (dir) => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ text: String.fromCharCode(65 + i) }));
    await Deno.writeTextFile(`${dir}/d.json`, JSON.stringify(rows));
    const pick = async (seed: number) =>
      (await loadCalibrationSamples({
        path: `${dir}/d.json`,
        tokenizer: charTokenizer(),
        numSamples: 5,
        maxSeqLength: 2,
        shuffle: true,
        seed,
      })).map((s) => s[1]);
    assertEquals(await pick(7), await pick(7));
    assert(JSON.stringify(await pick(7)) !== JSON.stringify(await pick(8)));
    assert(JSON.stringify(await pick(7)) !== JSON.stringify(ids("ABCDE").slice(1)));
  });
});

Deno.test("open_platypus and ultrachat_200k rows take llm-compressor's shapes", () => {
  const platypus = datasetPreset("open_platypus")!;
  assertEquals(
    platypus.formatRow({ instruction: "Add $& and {input}.", input: "", output: "4" }),
    "Below is an instruction that describes a task. Write a response that appropriately " +
      "completes the request.\n\n### Instruction:\nAdd $& and {input}.\n\n### Response:\n4",
  );
  assertEquals(
    platypus.formatRow({ instruction: "Sum.", input: "2 2", output: "4" }),
    "Below is an instruction that describes a task, paired with an input that provides further " +
      "context. Write a response that appropriately completes the request.\n\n### Instruction:\n" +
      "Sum.\n\n### Input:\n2 2\n\n### Response:\n4",
  );
  const ultrachat = datasetPreset("ultrachat")!;
  assertEquals(ultrachat.formatRow({ messages: CHAT.slice(1) }), [
    { role: "system", content: "" },
    ...CHAT.slice(1),
  ]);
  assertEquals(ultrachat.splitName!("train"), "train_sft");
});

Deno.test("Hub dataset ids and named datasets download only the split's data files", async () => {
  const commit = "89abcdef0123456789abcdef0123456789abcdef";
  const enc = (s: string) => new TextEncoder().encode(s);
  const hub = startMockHub([
    {
      key: "datasets/HuggingFaceH4/ultrachat_200k",
      commit,
      files: {
        "data/train_sft-00000-of-00001.jsonl": enc(JSON.stringify({ messages: CHAT.slice(1) })),
        "data/test_sft-00000-of-00001.jsonl": enc(JSON.stringify({ messages: CHAT })),
        "README.md": enc("# ultrachat"),
      },
    },
    {
      key: "datasets/org/plain",
      commit,
      files: { "train.parquet": parquet(ROWS), "test.parquet": parquet(ROWS.slice(1)) },
    },
  ]);
  try {
    await withTempDir(async (cache) => {
      const hubOpts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
      const plain = await resolveDataset("org/plain", { splits: "test[:1]", hub: hubOpts });
      assertEquals(plain.path, `${cache}/datasets--org--plain/snapshots/${commit}`);
      assertEquals([...Deno.readDirSync(plain.path)].map((e) => e.name), ["test.parquet"]);
      const s = await loadCalibrationSamples({
        path: plain.path,
        split: plain.split,
        tokenizer: charTokenizer(),
        numSamples: 1,
        maxSeqLength: 8,
      });
      assertEquals([...s[0]], ids("cde"));

      const uc = await resolveDataset("ultrachat_200k", { splits: "train[:1]", hub: hubOpts });
      assertEquals(uc.split, "train_sft[:1]");
      assertEquals(uc.preset?.name, "ultrachat_200k");
      assertEquals(
        [...Deno.readDirSync(`${uc.path}/data`)].map((e) => e.name),
        ["train_sft-00000-of-00001.jsonl"],
      );
      const tok = charTokenizer();
      const modelDir = `${cache}/model`;
      await Deno.mkdir(modelDir);
      await Deno.writeTextFile(`${modelDir}/tokenizer_config.json`, '{"eos_token": "</s>"}');
      await loadCalibrationSamples({
        path: uc.path,
        split: uc.split,
        preset: uc.preset,
        chatTemplate: await loadChatTemplate(modelDir, {
          source: uc.preset!.fallbackChatTemplate!,
          name: "ultrachat default",
        }),
        tokenizer: tok,
        numSamples: 1,
        maxSeqLength: 4,
      });
      // The model has no chat template: upstream's default one, with an empty system message
      // first. transformers renders with trim_blocks, so block tags leave no newlines.
      assertEquals(tok.seen, [
        "<|system|>\n</s>\n<|user|>\nHi?</s>\n<|assistant|>\nHello.</s>\n",
      ]);
      // Offline, the cache answers.
      const again = await resolveDataset("org/plain", {
        splits: "test",
        hub: { ...hubOpts, offline: true },
      });
      assertEquals(again.path, plain.path);
    });
  } finally {
    await hub.close();
  }
});
