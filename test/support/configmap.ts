import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ConfigMapVolume {
  readonly dir: string;
  /** The path users point Breakwater at: `<dir>/breakwater.yaml`, a symlink into `..data`. */
  readonly file: string;
  /** Publishes new content the way kubelet's atomic writer does. */
  update(content: string): Promise<void>;
  /** Deletes the folder (test clean-up). */
  remove(): Promise<void>;
}

let generation = 0;

async function writeGeneration(dir: string, content: string): Promise<string> {
  generation += 1;
  const name = `..2026_11_24_10_00_00.${process.pid}${String(generation).padStart(6, '0')}`;
  await mkdir(join(dir, name));
  await writeFile(join(dir, name, 'breakwater.yaml'), content);
  return name;
}

/**
 * A folder laid out as kubelet mounts a ConfigMap: a timestamped folder with the data,
 * `..data` pointing at it and `breakwater.yaml -> ..data/breakwater.yaml`. An update writes a
 * new timestamped folder, points `..data_tmp` at it, renames `..data_tmp` over `..data`, then
 * removes the old folder.
 */
export async function configMapVolume(content: string): Promise<ConfigMapVolume> {
  const dir = await mkdtemp(join(tmpdir(), 'breakwater-configmap-'));
  const first = await writeGeneration(dir, content);
  await symlink(first, join(dir, '..data'));
  await symlink(join('..data', 'breakwater.yaml'), join(dir, 'breakwater.yaml'));
  return {
    dir,
    file: join(dir, 'breakwater.yaml'),
    async update(next) {
      const previous = await readlink(join(dir, '..data'));
      const name = await writeGeneration(dir, next);
      await symlink(name, join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, previous), { recursive: true });
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
