/**
 * A local stand-in for the Hugging Face Hub, on 127.0.0.1 and a free port:
 * the routes llmc uses, with the headers the real Hub sends.
 *
 * - `GET /api/{models|datasets}/{org}/{name}/revision/{rev}`: `{ sha, siblings }`;
 * - `HEAD|GET /[datasets/]{org}/{name}/resolve/{rev}/{file}`: regular files
 *   answer 200 with `ETag: "<git blob sha1>"` and `X-Repo-Commit`; LFS files
 *   answer 302 to `/cdn/<sha256>` with `X-Linked-Etag` and `X-Linked-Size`;
 * - `GET /cdn/<sha256>`: the bytes, honouring `Range`;
 * - gated repositories answer 401 (`X-Error-Code: GatedRepo`) without the
 *   right bearer token; unknown repositories, revisions and files 404 with
 *   `RepoNotFound`, `RevisionNotFound`, `EntryNotFound`.
 *
 * Faults for tests: drop the connection after N bytes on a file's first
 * download, or serve different bytes than the etag promises.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** One repository the mock serves. */
export interface MockRepo {
  /** `models/org/name` or `datasets/org/name`. */
  readonly key: string;
  /** The commit `main` points to. */
  readonly commit: string;
  /** Path → bytes. */
  readonly files: Record<string, Uint8Array>;
  /** Paths stored in LFS (sha256 etag, CDN redirect). */
  readonly lfs?: readonly string[];
  /** Requests need `Authorization: Bearer <token>`. */
  readonly gatedToken?: string;
}

/** Faults to inject. */
export interface MockFaults {
  /** Path → bytes sent before the connection drops, on that file's first `dropTimes` GETs. */
  readonly dropAfter?: Record<string, number>;
  /** How many GETs of a `dropAfter` file drop (default 1). */
  readonly dropTimes?: number;
  /** Paths whose bytes are served corrupted (same length, one byte flipped). */
  readonly corrupt?: readonly string[];
}

/** One request the mock answered. */
export interface LoggedRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | null;
  readonly authorization: string | null;
  readonly status: number;
}

/** A running mock hub. */
export interface MockHub {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** Every request, in order. */
  readonly log: LoggedRequest[];
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * sha256 of bytes, hex.
 *
 * @param b the bytes
 * @returns the digest
 */
export function sha256Hex(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/**
 * The git blob sha1 of bytes (what the Hub's ETag is for a non-LFS file).
 *
 * @param b the bytes
 * @returns the digest
 */
export function gitSha1Hex(b: Uint8Array): string {
  return createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
}

/**
 * Starts the mock.
 *
 * @param repos what it serves
 * @param faults what it breaks
 * @returns the running server
 */
export function startMockHub(repos: readonly MockRepo[], faults: MockFaults = {}): MockHub {
  const byKey = new Map(repos.map((r) => [r.key, r]));
  const log: LoggedRequest[] = [];
  const dropped = new Map<string, number>();
  const cdn = new Map<string, { repo: MockRepo; file: string }>();
  for (const r of repos) {
    for (const f of r.lfs ?? []) cdn.set(sha256Hex(r.files[f]), { repo: r, file: f });
  }
  const bytesOf = (file: string, data: Uint8Array) => {
    if (!(faults.corrupt ?? []).includes(file)) return data;
    const bad = data.slice();
    bad[bad.length >> 1] ^= 0xff;
    return bad;
  };
  const serveBytes = (req: Request, file: string, data: Uint8Array, headers: Headers) => {
    const body = bytesOf(file, data);
    headers.set("Accept-Ranges", "bytes");
    const m = /^bytes=(\d+)-$/.exec(req.headers.get("Range") ?? "");
    let start = 0;
    let status = 200;
    if (m !== null) {
      start = Number(m[1]);
      if (start >= body.length) return new Response(null, { status: 416, headers });
      status = 206;
      headers.set("Content-Range", `bytes ${start}-${body.length - 1}/${body.length}`);
    }
    const part = body.subarray(start);
    headers.set("Content-Length", String(part.length));
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const drop = faults.dropAfter?.[file];
    if (drop !== undefined && (dropped.get(file) ?? 0) < (faults.dropTimes ?? 1)) {
      dropped.set(file, (dropped.get(file) ?? 0) + 1);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(part.slice(0, drop));
          // Erroring the body makes the server abort the connection mid-file.
          setTimeout(() => c.error(new Error("connection dropped by the mock hub")), 20);
        },
      });
      return new Response(stream, { status, headers });
    }
    return new Response(part.slice(), { status, headers });
  };

  const handle = (req: Request): Response => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    const err = (status: number, code: string, message: string) =>
      new Response(message, {
        status,
        headers: { "X-Error-Code": code, "X-Error-Message": message },
      });
    const authorized = (r: MockRepo) =>
      r.gatedToken === undefined || req.headers.get("Authorization") === `Bearer ${r.gatedToken}`;

    let m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    if (m !== null) {
      const repo = byKey.get(`${m[1]}/${m[2]}`);
      if (repo === undefined) return err(404, "RepoNotFound", "Repository not found");
      if (m[3] !== "main" && m[3] !== repo.commit) {
        return err(404, "RevisionNotFound", `Invalid rev id: ${m[3]}`);
      }
      return Response.json({
        id: m[2],
        sha: repo.commit,
        siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (m !== null) {
      const hit = cdn.get(m[1]);
      if (hit === undefined) return new Response("no such blob", { status: 404 });
      return serveBytes(req, hit.file, hit.repo.files[hit.file], new Headers());
    }
    m = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m !== null) {
      const repo = byKey.get(`${m[1] === undefined ? "models" : "datasets"}/${m[2]}`);
      if (repo === undefined) return err(404, "RepoNotFound", "Repository not found");
      if (!authorized(repo)) {
        return err(
          401,
          "GatedRepo",
          "Access to this model is restricted; you must be authenticated",
        );
      }
      if (m[3] !== "main" && m[3] !== repo.commit) {
        return err(404, "RevisionNotFound", `Invalid rev id: ${m[3]}`);
      }
      const file = m[4];
      const data = repo.files[file];
      if (data === undefined) return err(404, "EntryNotFound", `${file} does not exist`);
      const headers = new Headers({ "X-Repo-Commit": repo.commit });
      if ((repo.lfs ?? []).includes(file)) {
        const sha = sha256Hex(data);
        headers.set("X-Linked-Etag", `"${sha}"`);
        headers.set("X-Linked-Size", String(data.length));
        headers.set("ETag", `"${gitSha1Hex(new TextEncoder().encode(`oid sha256:${sha}`))}"`);
        headers.set("Location", `${url.origin}/cdn/${sha}`);
        return new Response(null, { status: 302, headers });
      }
      headers.set("ETag", `"${gitSha1Hex(data)}"`);
      return serveBytes(req, file, data, headers);
    }
    return new Response("not found", { status: 404 });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const res = handle(req);
    log.push({
      method: req.method,
      path: new URL(req.url).pathname,
      range: req.headers.get("Range"),
      authorization: req.headers.get("Authorization"),
      status: res.status,
    });
    return res;
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    log,
    close: async () => {
      await server.shutdown();
    },
  };
}
