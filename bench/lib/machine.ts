// One line naming the machine and the versions measured, printed above every result.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function firstLineOf(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  // nginx prints its version on stderr, wrk on stdout with a non-zero exit
  const line = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n')[0];
  return line === undefined || line === '' ? `${command}: not installed` : line;
}

function packageVersion(repoRoot: string, name: string): string {
  try {
    const manifest = JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return `${name} ${manifest.version ?? '?'}`;
  } catch {
    return `${name}: not installed`;
  }
}

function cpuModel(): string {
  const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return match?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown CPU';
}

export function describeMachine(repoRoot: string, startedAt: Date): string {
  return [
    startedAt.toISOString(),
    cpuModel(),
    `${os.cpus().length} cores`,
    `kernel ${os.release()}`,
    `node ${process.version}`,
    packageVersion(repoRoot, 'undici'),
    packageVersion(repoRoot, 'http-proxy'),
    firstLineOf('nginx', ['-v']),
    firstLineOf('haproxy', ['-v']),
    firstLineOf('wrk', ['-v']),
  ].join(' · ');
}
