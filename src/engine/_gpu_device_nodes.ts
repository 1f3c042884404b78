/**
 * Whether a Linux machine exposes any GPU that a WebGPU backend could drive.
 * Vulkan, GL and CUDA drivers all reach the hardware through a device node:
 * DRM render or card nodes (`/dev/dri/renderD*`, `/dev/dri/card*`), NVIDIA's
 * `/dev/nvidia*`, and WSL's `/dev/dxg`. Without one, the only adapter WebGPU
 * can find is a software one (llvmpipe, lavapipe), so "auto" can choose the
 * CPU engine without loading the graphics driver stack: probing the adapter
 * maps Mesa and LLVM into the process, about 60 MiB of resident memory that
 * a CPU-engine run never uses (measured on this project's machine: 39 → 99 MiB).
 *
 * @module
 */

/**
 * The GPU device nodes under `dev` (Linux's `/dev`), or null when that cannot
 * be told (not Linux, or `/dev` unreadable): the caller then probes WebGPU.
 *
 * @param dev the device folder (tests pass a temporary one)
 * @returns the paths of the nodes found (empty: no GPU), or null
 * @example
 * ```ts ignore
 * import { gpuDeviceNodes } from "./_gpu_device_nodes.ts";
 * const nodes = gpuDeviceNodes();
 * if (nodes !== null && nodes.length === 0) console.log("only software WebGPU here");
 * ```
 */
export function gpuDeviceNodes(dev = "/dev"): string[] | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const found: string[] = [];
    for (const e of Deno.readDirSync(dev)) {
      if (/^nvidia\d+$/.test(e.name) || e.name === "dxg") found.push(`${dev}/${e.name}`);
      if (e.name === "dri" && e.isDirectory) {
        for (const d of Deno.readDirSync(`${dev}/dri`)) {
          if (/^(renderD|card)\d+$/.test(d.name)) found.push(`${dev}/dri/${d.name}`);
        }
      }
    }
    return found.sort();
  } catch {
    return null; // no read permission on /dev: let the adapter probe decide
  }
}
