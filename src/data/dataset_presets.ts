/**
 * llm-compressor's named calibration datasets, by the names its examples use
 * (`--dataset ultrachat_200k`, `--dataset open_platypus`): which Hub
 * repository, split and column, and how a row becomes text or a chat.
 *
 * @module
 */

import type { ChatMessage } from "./chat_template.ts";

/** How a preset turns one row into text, or into a conversation to render. */
export type RowFormatter = (row: Record<string, unknown>) => string | ChatMessage[];

/** A named dataset. */
export interface DatasetPreset {
  /** The name users pass. */
  readonly name: string;
  /** The Hub dataset it loads. */
  readonly repoId: string;
  /** The split when none is given. */
  readonly defaultSplit: string;
  /** Maps a user's split name onto the dataset's (ultrachat's `train` is `train_sft`). */
  readonly splitName?: (split: string) => string;
  /** How a row becomes text or a chat. */
  readonly formatRow: RowFormatter;
  /** The chat template to use when the tokenizer has none (upstream's). */
  readonly fallbackChatTemplate?: string;
}

function messagesOf(row: Record<string, unknown>): ChatMessage[] {
  const m = row.messages;
  if (!Array.isArray(m)) throw new Error("the row has no 'messages' list");
  return m as ChatMessage[];
}

// The same text as llm-compressor's UltraChatDataset.DEFAULT_CHAT_TEMPLATE.
const ULTRACHAT_TEMPLATE = "{% for message in messages %}\n" +
  "{% if message['role'] == 'user' %}\n" +
  "{{ '<|user|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n" +
  "{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n" +
  "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n" +
  "{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n" +
  "{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const ULTRACHAT: DatasetPreset = {
  name: "ultrachat_200k",
  repoId: "HuggingFaceH4/ultrachat_200k",
  defaultSplit: "train_sft",
  splitName: (s) => (s === "train" || s === "test" ? `${s}_sft` : s),
  // Upstream puts an empty system message first when the chat has none.
  formatRow: (row) => {
    const messages = messagesOf(row);
    return messages[0]?.role === "system"
      ? messages
      : [{ role: "system", content: "" }, ...messages];
  },
  fallbackChatTemplate: ULTRACHAT_TEMPLATE,
};

const ALPACA_INPUT = "Below is an instruction that describes a task, paired with an input that " +
  "provides further context. Write a response that appropriately completes the request.\n\n" +
  "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
const ALPACA_NO_INPUT = "Below is an instruction that describes a task. Write a response that " +
  "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";

const OPEN_PLATYPUS: DatasetPreset = {
  name: "open_platypus",
  repoId: "garage-bAInd/Open-Platypus",
  defaultSplit: "train",
  // Upstream's Alpaca prompt, followed by the output.
  formatRow: (row) => {
    const str = (k: string) => (typeof row[k] === "string" ? row[k] as string : "");
    const hasInput = str("input") !== "";
    // One pass, as Python's str.format: a field's text is never scanned again.
    const prompt = (hasInput ? ALPACA_INPUT : ALPACA_NO_INPUT)
      .replace(/\{(instruction|input)\}/g, (_, k: string) => str(k));
    return prompt + str("output");
  },
};

const PRESETS: ReadonlyMap<string, DatasetPreset> = new Map([
  ["ultrachat_200k", ULTRACHAT],
  ["ultrachat", ULTRACHAT],
  ["ultrachat-200k", ULTRACHAT],
  ["open_platypus", OPEN_PLATYPUS],
  ["open-platypus", OPEN_PLATYPUS],
]);

/**
 * The preset a dataset name stands for, if any.
 *
 * @param name what the user passed as the dataset
 * @returns the preset, or undefined
 * @example
 * ```ts
 * import { datasetPreset } from "./dataset_presets.ts";
 * datasetPreset("ultrachat_200k")?.repoId; // "HuggingFaceH4/ultrachat_200k"
 * datasetPreset("open_platypus")?.formatRow({ instruction: "Add 2 and 2.", output: "4" });
 * // "Below is an instruction that describes a task. ...### Response:\n4"
 * ```
 */
export function datasetPreset(name: string): DatasetPreset | undefined {
  return PRESETS.get(name);
}
