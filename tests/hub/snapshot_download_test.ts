/**
 * Hub ids resolved through the Hugging Face cache, against a local mock of
 * the Hub (nothing here contacts a real hub): the cache layout written, auth
 * and not-found errors, a resumed download, a checksum mismatch, offline mode.
 */

import { assert, assertEquals, assertRejects } from "../sink/_assert.ts";
import { tempDirRunner } from "../_shared.ts";
import {
  HubAuthError,
  HubChecksumError,
  HubError,
  HubNotFoundError,
  HubOfflineError,
  parseHubId,
  resolveModelDir,
  snapshotDownload,
} from "../../src/hub/mod.ts";
import { gitSha1Hex, sha256Hex, startMockHub } from "./_mock_hub.ts";
import type { MockFaults, MockRepo } from "./_mock_hub.ts";

const withTempDir = tempDirRunner("llmc-hub-test-");
const enc = (s: string) => new TextEncoder().encode(s);
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

function weights(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + 7) & 0xff;
  return b;
}

const MODEL: MockRepo = {
  key: "models/org/tiny",
  commit: COMMIT,
  files: {
    "config.json": enc('{"model_type":"llama"}'),
    "tokenizer.json": enc('{"model":{}}'),
    "model.safetensors": weights(200_000),
    "pytorch_model.bin": weights(10),
    "original/params.json": enc("{}"),
  },
  lfs: ["model.safetensors", "pytorch_model.bin"],
};

async function withHub<T>(
  repos: MockRepo[],
  faults: MockFaults,
  fn: (hub: ReturnType<typeof startMockHub>, cache: string) => Promise<T>,
): Promise<T> {
  const hub = startMockHub(repos, faults);
  try {
    return await withTempDir((cache) => fn(hub, cache));
  } finally {
    await hub.close();
  }
}

Deno.test("parseHubId: org/name[@revision], datasets/ prefix; paths are not ids", () => {
  assertEquals(parseHubId("karpathy/stories260K"), {
    repoId: "karpathy/stories260K",
    revision: "main",
    repoType: "model",
  });
  assertEquals(parseHubId("org/name@v1.0")?.revision, "v1.0");
  assertEquals(parseHubId("datasets/a/b")?.repoType, "dataset");
  assertEquals(parseHubId("./models/x"), null);
  assertEquals(parseHubId("/abs/dir"), null);
  assertEquals(parseHubId("a/b/c"), null);
  assertEquals(parseHubId("a--b/c"), null);
});

Deno.test("a model id downloads into the huggingface_hub cache layout, then reuses it", async () => {
  await withHub([MODEL], {}, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const dir = await resolveModelDir("org/tiny", opts);
    const storage = `${cache}/models--org--tiny`;
    assertEquals(dir, `${storage}/snapshots/${COMMIT}`);
    assertEquals(await Deno.readTextFile(`${storage}/refs/main`), COMMIT);
    // Only what llmc reads: no *.bin, nothing in subfolders.
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, ["config.json", "model.safetensors", "tokenizer.json"]);
    // Relative symlinks into blobs/, named by sha256 (LFS) and git blob sha1 (regular files).
    const lfsEtag = sha256Hex(MODEL.files["model.safetensors"]);
    const cfgEtag = gitSha1Hex(MODEL.files["config.json"]);
    assertEquals(await Deno.readLink(`${dir}/model.safetensors`), `../../blobs/${lfsEtag}`);
    assertEquals(await Deno.readLink(`${dir}/config.json`), `../../blobs/${cfgEtag}`);
    assertEquals(await Deno.readFile(`${dir}/model.safetensors`), MODEL.files["model.safetensors"]);
    const blobs = [...Deno.readDirSync(`${storage}/blobs`)].map((e) => e.name).sort();
    assertEquals(blobs, [cfgEtag, gitSha1Hex(MODEL.files["tokenizer.json"]), lfsEtag].sort());
    // The LFS file's bytes came through the CDN redirect.
    assert(hub.log.some((r) => r.method === "GET" && r.path === `/cdn/${lfsEtag}`));

    // A second resolution downloads nothing.
    const before = hub.log.filter((r) => r.method === "GET" && r.path.includes("/cdn/")).length;
    assertEquals(await resolveModelDir("org/tiny", opts), dir);
    const after = hub.log.filter((r) => r.method === "GET" && r.path.includes("/cdn/")).length;
    assertEquals(after, before);
    assert(!hub.log.some((r) => r.method === "HEAD" && r.path.endsWith("/pytorch_model.bin")));

    // Offline, the cache alone answers, and nothing is asked of the Hub.
    const requests = hub.log.length;
    assertEquals(await resolveModelDir("org/tiny", { ...opts, offline: true }), dir);
    assertEquals(
      await resolveModelDir(`org/tiny@${COMMIT}`, { ...opts, offline: true }),
      dir,
    );
    assertEquals(hub.log.length, requests);
    // A local folder is used as it is, without asking the Hub.
    assertEquals(await resolveModelDir(dir, opts), dir);
    assertEquals(hub.log.length, requests);
  });
});

Deno.test("offline without the revision or a required file in the cache is a clear error", async () => {
  await withTempDir(async (cache) => {
    const opts = { cacheDir: cache, endpoint: "http://127.0.0.1:9", token: null, offline: true };
    const e = await assertRejects(() => resolveModelDir("org/tiny", opts), HubOfflineError);
    assert(e.message.includes("org/tiny@main"), e.message);
    assert(e.message.includes("HF_HUB_OFFLINE"), e.message);
    // A snapshot without config.json.
    const storage = `${cache}/models--org--tiny`;
    await Deno.mkdir(`${storage}/refs`, { recursive: true });
    await Deno.mkdir(`${storage}/snapshots/${COMMIT}`, { recursive: true });
    await Deno.writeTextFile(`${storage}/refs/main`, COMMIT);
    const e2 = await assertRejects(() => resolveModelDir("org/tiny", opts), HubOfflineError);
    assert(e2.message.includes("config.json is not in the cached snapshot"), e2.message);
  });
});

Deno.test("a gated repository answers 401: the error says to set HF_TOKEN; the token opens it", async () => {
  const gated = { ...MODEL, key: "models/org/gated", gatedToken: "hf_secret" };
  await withHub([gated], {}, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const e = await assertRejects(() => resolveModelDir("org/gated", opts), HubAuthError);
    assert(e.message.includes("org/gated@main"), e.message);
    assert(e.message.includes("HTTP 401"), e.message);
    assert(e.message.includes("HF_TOKEN"), e.message);
    assert(e.message.includes("gated"), e.message);
    const wrong = await assertRejects(
      () => resolveModelDir("org/gated", { ...opts, token: "hf_wrong" }),
      HubAuthError,
    );
    assert(wrong.message.includes("has no access"), wrong.message);
    const dir = await resolveModelDir("org/gated", { ...opts, token: "hf_secret" });
    assertEquals(await Deno.readTextFile(`${dir}/config.json`), '{"model_type":"llama"}');
    assert(hub.log.some((r) => r.authorization === "Bearer hf_secret"));
  });
});

Deno.test("404s name the repository, the revision or the file", async () => {
  await withHub([MODEL], {}, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const repo = await assertRejects(() => resolveModelDir("org/missing", opts), HubNotFoundError);
    assert(repo.message.includes("org/missing@main"), repo.message);
    assert(repo.message.includes("repository 'org/missing' was not found"), repo.message);
    assert(
      repo.message.startsWith("'org/missing' is not a local folder, and as a Hub id"),
      repo.message,
    );
    const rev = await assertRejects(
      () => resolveModelDir("org/tiny@nope", opts),
      HubNotFoundError,
    );
    assert(rev.message.includes("revision 'nope' does not exist"), rev.message);
    // Nothing was written for the failed lookups.
    assertEquals([...Deno.readDirSync(cache)].map((e) => e.name), []);
  });
});

Deno.test("a connection dropped mid-file resumes with a Range request and completes", async () => {
  const file = "model.safetensors";
  await withHub([MODEL], { dropAfter: { [file]: 65_536 } }, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const dir = await resolveModelDir("org/tiny", opts);
    assertEquals(await Deno.readFile(`${dir}/${file}`), MODEL.files[file]);
    const gets = hub.log.filter((r) => r.method === "GET" && r.path.startsWith("/cdn/"));
    assertEquals(gets.length, 2);
    assertEquals(gets[0].range, null);
    assertEquals(gets[1].range, "bytes=65536-");
    assertEquals(gets[1].status, 206);
    const blobs = [...Deno.readDirSync(`${cache}/models--org--tiny/blobs`)].map((e) => e.name);
    assert(!blobs.some((b) => b.endsWith(".incomplete")), blobs.join());
  });
});

Deno.test("a download that keeps failing leaves .incomplete; the next run resumes from it", async () => {
  const file = "model.safetensors";
  await withHub([MODEL], { dropAfter: { [file]: 16_384 }, dropTimes: 4 }, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const e = await assertRejects(() => resolveModelDir("org/tiny", opts), HubError);
    assert(
      e.message.includes(`org/tiny@main: ${file}: download failed after 4 attempts`),
      e.message,
    );
    assert(e.message.includes("run again to resume"), e.message);
    const etag = sha256Hex(MODEL.files[file]);
    const partial = `${cache}/models--org--tiny/blobs/${etag}.incomplete`;
    assertEquals((await Deno.stat(partial)).size, 4 * 16_384);
    const dir = await resolveModelDir("org/tiny", opts);
    assertEquals(await Deno.readFile(`${dir}/${file}`), MODEL.files[file]);
    const gets = hub.log.filter((r) => r.method === "GET" && r.path.startsWith("/cdn/"));
    assertEquals(gets.map((r) => r.range), [
      null,
      "bytes=16384-",
      "bytes=32768-",
      "bytes=49152-",
      "bytes=65536-",
    ]);
  });
});

Deno.test("an unreachable endpoint falls back to the cached snapshot, with a warning", async () => {
  await withHub([MODEL], {}, async (hub, cache) => {
    const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
    const dir = await resolveModelDir("org/tiny", opts);
    const warnings: string[] = [];
    const again = await resolveModelDir("org/tiny", {
      ...opts,
      endpoint: "http://127.0.0.1:9",
      onWarning: (m) => warnings.push(m),
    });
    assertEquals(again, dir);
    assertEquals(warnings.length, 1);
    assert(warnings[0].includes("using the cached snapshot"), warnings[0]);
  });
});

Deno.test("a wrong checksum discards the file and names it", async () => {
  for (const file of ["model.safetensors", "tokenizer.json"]) {
    await withHub([MODEL], { corrupt: [file] }, async (hub, cache) => {
      const opts = { cacheDir: cache, endpoint: hub.endpoint, token: null, offline: false };
      const e = await assertRejects(() => resolveModelDir("org/tiny", opts), HubChecksumError);
      assert(e.message.includes(`org/tiny@main: ${file}`), e.message);
      assert(e.message.includes("discarded"), e.message);
      const storage = `${cache}/models--org--tiny`;
      const blobs = [...Deno.readDirSync(`${storage}/blobs`)].map((x) => x.name);
      const etag = file.endsWith(".safetensors")
        ? sha256Hex(MODEL.files[file])
        : gitSha1Hex(MODEL.files[file]);
      assert(!blobs.some((b) => b.startsWith(etag)), blobs.join());
      // No ref was recorded for an incomplete snapshot.
      await assertRejects(() => Deno.stat(`${storage}/refs/main`), Deno.errors.NotFound);
    });
  }
});

Deno.test("a listed path that would leave the snapshot folder is refused", async () => {
  const evil: MockRepo = {
    key: "datasets/org/evil",
    commit: COMMIT,
    files: { "../../../escape.jsonl": enc("{}") },
  };
  await withHub([evil], {}, async (hub, cache) => {
    const e = await assertRejects(
      () =>
        snapshotDownload(parseHubId("org/evil", "dataset")!, {
          cacheDir: `${cache}/hub`,
          endpoint: hub.endpoint,
          token: null,
          offline: false,
        }),
      HubError,
    );
    assert(e.message.includes("unsafe path"), e.message);
    assertEquals([...Deno.readDirSync(cache)].map((x) => x.name), []);
  });
});

Deno.test("dataset ids use the datasets/ routes and cache folder", async () => {
  const ds: MockRepo = {
    key: "datasets/org/chat",
    commit: COMMIT,
    files: { "data/train.jsonl": enc('{"text":"hi"}\n'), "README.md": enc("# chat") },
  };
  await withHub([ds], {}, async (hub, cache) => {
    const dir = await snapshotDownload(parseHubId("org/chat", "dataset")!, {
      cacheDir: cache,
      endpoint: hub.endpoint,
      token: null,
      offline: false,
      include: (p) => p.endsWith(".jsonl"),
    });
    assertEquals(dir, `${cache}/datasets--org--chat/snapshots/${COMMIT}`);
    assertEquals(await Deno.readTextFile(`${dir}/data/train.jsonl`), '{"text":"hi"}\n');
    assertEquals(
      await Deno.readLink(`${dir}/data/train.jsonl`),
      `../../../blobs/${gitSha1Hex(ds.files["data/train.jsonl"])}`,
    );
    assert(hub.log.some((r) => r.path === "/api/datasets/org/chat/revision/main"));
    assert(hub.log.some((r) => r.path === `/datasets/org/chat/resolve/${COMMIT}/data/train.jsonl`));
  });
});
