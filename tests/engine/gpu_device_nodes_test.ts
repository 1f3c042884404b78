import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { gpuDeviceNodes } from "../../src/engine/_gpu_device_nodes.ts";

const linux = Deno.build.os === "linux";

Deno.test("gpuDeviceNodes: DRM render/card nodes, NVIDIA and WSL nodes count; other devices do not", async () => {
  const dev = await Deno.makeTempDir();
  try {
    for (const f of ["null", "zero", "nvidiactl", "nvidia-uvm", "fb0"]) {
      await Deno.writeFile(`${dev}/${f}`, new Uint8Array());
    }
    await Deno.mkdir(`${dev}/dri`);
    await Deno.writeFile(`${dev}/dri/by-path`, new Uint8Array());
    assertEquals(gpuDeviceNodes(dev), linux ? [] : null);
    await Deno.writeFile(`${dev}/dri/renderD128`, new Uint8Array());
    await Deno.writeFile(`${dev}/nvidia0`, new Uint8Array());
    await Deno.writeFile(`${dev}/dxg`, new Uint8Array());
    assertEquals(
      gpuDeviceNodes(dev),
      linux ? [`${dev}/dri/renderD128`, `${dev}/dxg`, `${dev}/nvidia0`] : null,
    );
  } finally {
    await Deno.remove(dev, { recursive: true });
  }
});

Deno.test("gpuDeviceNodes: an unreadable device folder means unknown (the adapter probe decides)", () => {
  assertEquals(gpuDeviceNodes("/nonexistent-llmc-dev"), null);
});
