// deploy/kubernetes: the chart's default deployment as plain manifests. Rendered with
// `kubectl kustomize` as users apply it, checked against the Kubernetes API schemas, its
// embedded config loaded by Breakwater, and compared with the chart's values it mirrors.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { parseDuration } from '../../../src/config/units.ts';

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
const byKind = (kind: string): KubeObject => {
  const found = objects.find((object) => object.kind === kind);
  if (found === undefined) throw new Error(`no ${kind} rendered`);
  return found;
};
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
  it('holds the ServiceAccount, ConfigMap, Service and Deployment the chart renders by default', () => {
    expect(objects.map((object) => object.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Service', 'ServiceAccount']);
  });

  it('matches the Kubernetes API schemas', () => {
    const models: Record<string, new (data: never) => { validate(): void }> = { ConfigMap, Deployment, Service, ServiceAccount };
    for (const object of objects) {
      expect(object.apiVersion).toBe(object.kind === 'Deployment' ? 'apps/v1' : 'v1');
      expect(() => new models[object.kind]!(object as never).validate(), `${object.kind} ${object.metadata.name}`).not.toThrow();
    }
  });

  it('carries a config that Breakwater loads, the same as the chart default', () => {
    const text = (byKind('ConfigMap').data as Record<string, string>)['breakwater.yaml']!;
    const loaded = parseConfig(text, 'breakwater.yaml');
    expect(loaded.ok ? [] : loaded.problems).toEqual([]);
    expect(parse(text)).toEqual(chartValues.config);
  });

  it('keeps the ConfigMap name stable, so an edit updates the mounted folder instead of rolling the pods', () => {
    const configMap = byKind('ConfigMap');
    expect(configMap.metadata.name).toBe('example-breakwater');
    const volume = podSpec().volumes.find((candidate) => candidate.configMap !== undefined);
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
