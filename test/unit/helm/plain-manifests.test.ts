// deploy/kubernetes: the chart's default deployment as plain manifests, with a sample service
// that shows both directions of traffic. Rendered with `kubectl kustomize` as users apply it,
// checked against the Kubernetes API schemas, its embedded config loaded by Breakwater, compared
// with the chart's values it mirrors, and the sample service run against Breakwater.

import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { parseDuration } from '../../../src/config/units.ts';
import { startBreakwater } from '../../support/breakwater.ts';
import { startUpstream } from '../../support/upstream-server.ts';

const root = new URL('../../../', import.meta.url).pathname;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

interface Container {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  restartPolicy?: string;
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: unknown;
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}

interface Probe {
  httpGet: { path: string; port: string | number };
  [timing: string]: unknown;
}

interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes: { name: string; configMap?: { name: string } }[];
  securityContext: unknown;
  terminationGracePeriodSeconds: number;
}

const chartValues = parse(await readFile(join(root, 'helm/breakwater/values.yaml'), 'utf8')) as {
  config: Record<string, unknown>;
  terminationGracePeriodSeconds: number;
  podSecurityContext: unknown;
  sidecar: { resources: unknown; securityContext: unknown; probes: Record<'startup' | 'readiness' | 'liveness', Record<string, unknown>> };
};

let objects: KubeObject[];
const byKind = (kind: string, name?: string): KubeObject => {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  if (found === undefined) throw new Error(`no ${kind} ${name ?? ''} rendered`);
  return found;
};
/** The config the example's Breakwater runs, as its ConfigMap holds it. */
const breakwaterYaml = (): string => (byKind('ConfigMap', 'example-breakwater').data as Record<string, string>)['breakwater.yaml']!;
const appContainer = (): Container => podSpec().containers.find((container) => container.name === 'app')!;
const podSpec = (): PodSpec => (byKind('Deployment').spec as { template: { spec: PodSpec } }).template.spec;
const breakwaterContainer = (): Container => {
  const sidecar = podSpec().initContainers?.find((container) => container.name === 'breakwater');
  if (sidecar === undefined) throw new Error('no breakwater init container');
  return sidecar;
};
const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

beforeAll(async () => {
  // The kubectl that `npm test` installs (scripts/install-system-tools.sh test).
  const { stdout } = await promisify(execFile)('kubectl', ['kustomize', join(root, 'deploy/kubernetes')]);
  objects = parseAllDocuments(stdout).map((document) => {
    expect(document.errors).toEqual([]);
    return document.toJS() as KubeObject;
  });
});

describe('deploy/kubernetes rendered by kubectl kustomize', () => {
  it("holds the ServiceAccount, ConfigMap, Service and Deployment the chart renders by default, and the sample service's code", () => {
    expect(objects.map((object) => `${object.kind} ${object.metadata.name}`).sort()).toEqual([
      'ConfigMap example-app',
      'ConfigMap example-breakwater',
      'Deployment example-breakwater',
      'Service example-breakwater',
      'ServiceAccount example-breakwater',
    ]);
  });

  it('matches the Kubernetes API schemas', () => {
    const models: Record<string, new (data: never) => { validate(): void }> = { ConfigMap, Deployment, Service, ServiceAccount };
    for (const object of objects) {
      expect(object.apiVersion).toBe(object.kind === 'Deployment' ? 'apps/v1' : 'v1');
      expect(() => new models[object.kind]!(object as never).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it("carries a config that Breakwater loads: the chart default plus the sample service's probes and outbound route", () => {
    const text = breakwaterYaml();
    const loaded = parseConfig(text, 'breakwater.yaml');
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
    const config = parse(text) as {
      telemetry: Record<string, unknown>;
      upstreams: Record<string, unknown>;
      routes: { listener: string; upstream: string }[];
    };
    // What the sample adds: the probes the chart derives from app.*Probe, and the calls it makes.
    const outbound = config.routes.filter((route) => route.listener === 'outbound');
    expect(outbound.length).toBeGreaterThan(0);
    const { appProbes: _appProbes, ...telemetry } = config.telemetry;
    const upstreams = Object.fromEntries(Object.entries(config.upstreams).filter(([name]) => !outbound.some((route) => route.upstream === name)));
    const routes = config.routes.filter((route) => route.listener !== 'outbound');
    expect({ ...config, telemetry, upstreams, routes }).toEqual(chartValues.config);
  });

  it("sends the service's probes through the telemetry port, to the paths Breakwater's config serves", () => {
    const loaded = parseConfig(breakwaterYaml(), 'breakwater.yaml');
    if (!loaded.ok) throw new Error('the config does not load');
    const app = appContainer();
    const kinds = { startupProbe: 'startupz', readinessProbe: 'readyz', livenessProbe: 'livez' } as const;
    const probed = Object.entries(kinds).filter(([field]) => app[field as keyof typeof kinds] !== undefined);
    expect(probed.length).toBeGreaterThan(0);
    for (const [field, kind] of probed) {
      const probe = app[field as keyof typeof kinds]!;
      expect(probe.httpGet).toEqual({ path: `/app-health/app/${kind}`, port: loaded.config.telemetry.address.port });
      const target = loaded.config.telemetry.appProbes.app?.[kind];
      expect(target?.port, `${kind} calls the service's port`).toBe(app.ports?.find((port) => port.name === 'app')?.containerPort);
      // Breakwater answers within kubelet's own timeout (timeoutSeconds, 1 by default).
      expect(target!.timeoutMs).toBeLessThanOrEqual(((probe.timeoutSeconds as number | undefined) ?? 1) * 1000);
    }
  });

  it('keeps the ConfigMap name stable, so an edit updates the mounted folder instead of rolling the pods', () => {
    const configMap = byKind('ConfigMap', 'example-breakwater');
    expect(configMap.metadata.name).toBe('example-breakwater');
    const volume = podSpec().volumes.find((candidate) => candidate.configMap?.name === 'example-breakwater');
    expect(volume?.configMap?.name).toBe(configMap.metadata.name);
    const mount = breakwaterContainer().volumeMounts?.find((candidate) => candidate.name === volume?.name);
    expect(mount).toMatchObject({ mountPath: '/etc/breakwater', readOnly: true });
    expect(mount?.subPath).toBeUndefined();
    expect(breakwaterContainer().args).toEqual(['run', '--config', '/etc/breakwater/breakwater.yaml']);
    expect(JSON.stringify(byKind('Deployment'))).not.toMatch(/checksum\//);
  });

  it('runs Breakwater as a native sidecar with the image the kustomization names', () => {
    expect(breakwaterContainer()).toMatchObject({ restartPolicy: 'Always', image: 'breakwater:0.1.0' });
  });

  it('probes the telemetry port: startup and readiness on /readyz, liveness on /healthz, timed as the chart does', () => {
    const sidecar = breakwaterContainer();
    const telemetryPort = portOf((chartValues.config.telemetry as { address: string }).address);
    const portNamed = (name: string | number) => sidecar.ports?.find((port) => port.name === name)?.containerPort;
    const probes = { startup: sidecar.startupProbe!, readiness: sidecar.readinessProbe!, liveness: sidecar.livenessProbe! };
    expect(probes.startup.httpGet.path).toBe('/readyz');
    expect(probes.readiness.httpGet.path).toBe('/readyz');
    expect(probes.liveness.httpGet.path).toBe('/healthz');
    for (const [kind, probe] of Object.entries(probes)) {
      expect(portNamed(probe.httpGet.port)).toBe(telemetryPort);
      const { httpGet: _httpGet, ...timing } = probe;
      expect(timing).toEqual(chartValues.sidecar.probes[kind as keyof typeof probes]);
    }
  });

  it('locks Breakwater down as the chart does: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp', () => {
    const sidecar = breakwaterContainer();
    expect(sidecar.securityContext).toEqual(chartValues.sidecar.securityContext);
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(sidecar.resources).toEqual(chartValues.sidecar.resources);
    expect(podSpec().securityContext).toEqual(chartValues.podSecurityContext);
  });

  it('gives the pod longer to stop than Breakwater may drain', () => {
    const drain = parseDuration((chartValues.config.shutdown as { drainTimeout: string }).drainTimeout);
    expect(podSpec().terminationGracePeriodSeconds).toBe(chartValues.terminationGracePeriodSeconds);
    expect(podSpec().terminationGracePeriodSeconds * 1000).toBeGreaterThan(drain);
  });

  it("sends the Service's traffic to the inbound listener and lets Prometheus find /metrics", () => {
    const listeners = chartValues.config.listeners as { name: string; address: string }[];
    const inboundPort = portOf(listeners.find((listener) => listener.name === 'inbound')!.address);
    const telemetryPort = portOf((chartValues.config.telemetry as { address: string }).address);
    const ports = (byKind('Service').spec as { ports: { name: string; targetPort: number }[] }).ports;
    expect(ports.find((port) => port.name === 'http')?.targetPort).toBe(inboundPort);
    expect(ports.find((port) => port.name === 'http-metrics')?.targetPort).toBe(telemetryPort);
    const annotations = (byKind('Deployment').spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations;
    expect(annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(telemetryPort), 'prometheus.io/path': '/metrics' });
  });
});

/** A loopback port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('the sample service of deploy/kubernetes, beside Breakwater on loopback', () => {
  it("takes calls through the inbound listener, sends its own through the outbound one, and answers kubelet's probes", async () => {
    // Stands in for the Service the sample calls (the example's own, in the cluster).
    const other = await startUpstream();
    const appPort = await freePort();
    // The example's own breakwater.yaml, with loopback addresses instead of the pod's.
    const yaml = (await readFile(join(root, 'deploy/kubernetes/breakwater.yaml'), 'utf8'))
      .replace(/(127\.0\.0\.1|0\.0\.0\.0):150\d\d/g, '127.0.0.1:0')
      .replaceAll('http://127.0.0.1:8080', `http://127.0.0.1:${appPort}`)
      .replaceAll('port: 8080', `port: ${appPort}`)
      .replaceAll('http://example-breakwater:80', other.origin);
    const bw = await startBreakwater(yaml);
    const app = appContainer();
    const env = Object.fromEntries((app.env ?? []).map(({ name, value }) => [name, value]));
    const sample = spawn(process.execPath, [join(root, 'deploy/kubernetes/sample-app.mjs')], {
      env: { PATH: process.env.PATH, PORT: String(appPort), NODE_USE_ENV_PROXY: env.NODE_USE_ENV_PROXY, CALL_URL: env.CALL_URL, HTTP_PROXY: bw.url('outbound') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => sample.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: sample.stdout! }).on('line', (line) => line.includes('"listening"') && resolve());
        void exited.then(() => reject(new Error('the sample service exited before it listened')));
      });

      const inbound = await fetch(`${bw.url('inbound')}/hello`);
      expect(inbound.status).toBe(200);
      expect(await inbound.json()).toMatchObject({ hello: 'from the sample app' });

      const call = await fetch(`${bw.url('inbound')}/call`);
      expect(call.status).toBe(200);
      // Breakwater's outbound listener handled the call: it says how many attempts it made.
      expect(await call.json()).toMatchObject({ called: env.CALL_URL, status: 200, attempts: '1' });
      expect(other.requests.at(-1)?.headers).toMatchObject({ host: new URL(env.CALL_URL!).host, 'x-breakwater-attempt': '1' });

      expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz`)).status).toBe(200);
      expect((await fetch(`${bw.telemetryUrl}/app-health/app/livez`)).status).toBe(200);
      sample.kill('SIGTERM');
      await exited;
      expect((await fetch(`${bw.telemetryUrl}/app-health/app/readyz`)).status).toBe(503);
      expect((await fetch(`${bw.telemetryUrl}/readyz`)).status).toBe(200);
    } finally {
      sample.kill('SIGKILL');
      await exited;
      await bw.stop();
      await other.close();
    }
  });
});
