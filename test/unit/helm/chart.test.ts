// The Helm chart, checked without a helm binary: its values against its schema and
// Breakwater's own config rules, the copies it carries of files kept elsewhere, and the
// structure of every template.

import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Ajv } from 'ajv';
import { isMap, isScalar, isSeq, parse, parseAllDocuments, parseDocument, stringify } from 'yaml';
import type { Node as YamlNode } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { parseDuration } from '../../../src/config/units.ts';
import { paths, syncedValuesSchemaText } from '../../../scripts/sync-chart.ts';
import { actions, blockProblems, defineBodies, definedTemplates, includedTemplates, skeleton, valuePaths } from './go-template.ts';

const root = new URL('../../../', import.meta.url).pathname;
const chart = join(root, 'helm/breakwater');

const valuesText = await readFile(join(chart, 'values.yaml'), 'utf8');
const values = parse(valuesText) as Record<string, unknown> & { config: Record<string, unknown> };
const valuesSchema = JSON.parse(await readFile(join(chart, 'values.schema.json'), 'utf8')) as Record<string, unknown>;

function schemaValidator() {
  // Helm ignores keywords it does not know; errorMessage is an annotation for editors.
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addKeyword('errorMessage');
  return ajv.compile(valuesSchema);
}

/** The default values with one key set (a key that may not exist yet, to try a typo). */
function withValue(path: readonly (string | number)[], value: unknown): unknown {
  const copy = structuredClone(values);
  let node = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
  return copy;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

describe('values.yaml and values.schema.json', () => {
  it('points editors at the schema on its first line', () => {
    expect(valuesText.split('\n')[0]).toBe('# yaml-language-server: $schema=values.schema.json');
  });

  it('validates against values.schema.json', () => {
    const validate = schemaValidator();
    expect(validate(values), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('refuses unknown keys at every level of the schema, so a typo fails helm install', () => {
    const validate = schemaValidator();
    expect(validate(withValue(['replicaCounts'], 3))).toBe(false);
    expect(validate(withValue(['sidecar', 'nativ'], true))).toBe(false);
    expect(validate(withValue(['sidecar', 'probes', 'readiness', 'periodSecond'], 5))).toBe(false);
    expect(validate(withValue(['metrics', 'serviceMonitor', 'enable'], true))).toBe(false);
    expect(validate(withValue(['app', 'image', 'repo'], 'shop/cart'))).toBe(false);

    // Every object the chart itself defines is closed; free-form Kubernetes objects
    // (resources, affinity, ...) and Breakwater's config are checked by their own rules.
    const open: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (node === null || typeof node !== 'object') return;
      const schema = node as Record<string, unknown>;
      if (schema.properties !== undefined && schema.additionalProperties !== false) open.push(path);
      for (const [key, child] of Object.entries(schema)) visit(child, `${path}/${key}`);
    };
    visit(valuesSchema, '#');
    expect(open).toEqual([]);
  });

  it('checks the route policies in config with Breakwater config schema, so a bad policy fails helm install', () => {
    const validate = schemaValidator();
    expect(validate(withValue(['config', 'routes', 0, 'retry'], { maxAttempt: 3 }))).toBe(false);
    expect(validate(withValue(['config', 'routes', 0, 'timeout'], 'ten seconds'))).toBe(false);
    expect(validate(withValue(['config', 'upstreams', 'local-app', 'circuitBreaker'], { failureRate: 1.5 }))).toBe(false);
    expect(validate(withValue(['config', 'routes', 0, 'retry'], { maxAttempts: 3 }))).toBe(true);
  });

  it('checks the stores block: a claim or Secret name Kubernetes accepts, a quantity for the emptyDir, no unknown keys', () => {
    const validate = schemaValidator();
    expect(validate(withValue(['stores', 'sqlite', 'existingClaim'], 'breakwater-state'))).toBe(true);
    expect(validate(withValue(['stores', 'sqlite', 'existingClaim'], 'Breakwater_State'))).toBe(false);
    expect(validate(withValue(['stores', 'sqlite', 'sizeLimit'], '1Gi'))).toBe(true);
    expect(validate(withValue(['stores', 'sqlite', 'sizeLimit'], 'a lot'))).toBe(false);
    expect(validate(withValue(['stores', 'sqlite', 'existingClam'], 'breakwater-state'))).toBe(false);
    expect(validate(withValue(['stores', 'redis'], { existingSecret: 'redis-auth', urlKey: 'url', passwordKey: 'password' }))).toBe(true);
    expect(validate(withValue(['stores', 'redis'], { existingSecret: 'redis-auth', urlKey: 'url' }))).toBe(false);
    expect(validate(withValue(['stores', 'redis', 'urlKey'], 'redis url'))).toBe(false);
    expect(validate(withValue(['stores', 'redis', 'secret'], 'redis-auth'))).toBe(false);
  });

  it('has stores examples in its comments that Breakwater loads, with the variables the chart sets from the Secret', () => {
    // The config lines values.yaml shows above `stores:`, as a user copies them into config.
    const examples = [...valuesText.matchAll(/^#\s+config\.stores\.(\w+): (\{.*\})$/gm)].map((match) => [match[1]!, parse(match[2]!)] as const);
    expect(examples.map(([name]) => name)).toEqual(['local', 'shared']);
    const routes = values.config.routes as Record<string, unknown>[];
    const config = { ...values.config, stores: Object.fromEntries(examples), routes: [{ ...routes[0], idempotency: { store: 'shared' } }] };
    const env = { BREAKWATER_REDIS_URL: 'redis://:secret@redis.infra:6379/0' };
    const result = parseConfig(stringify(config), 'breakwater.yaml', { env });
    expect(result.ok ? [] : result.problems).toEqual([]);
    // Without the variable, Breakwater refuses the config rather than call Redis without credentials.
    expect(parseConfig(stringify(config), 'breakwater.yaml', { env: {} }).ok).toBe(false);
  });

  it('keeps Breakwater locked down whatever the values: non-root, read-only root filesystem, no escalation, no capabilities, a seccomp filter', () => {
    const validate = schemaValidator();
    expect(validate(withValue(['sidecar', 'securityContext', 'runAsNonRoot'], false))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'readOnlyRootFilesystem'], false))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'runAsUser'], 0))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'privileged'], true))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'capabilities'], { drop: ['NET_RAW'] }))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'capabilities'], { drop: ['ALL'], add: ['NET_ADMIN'] }))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'seccompProfile'], { type: 'Unconfined' }))).toBe(false);
    expect(validate(withValue(['sidecar', 'securityContext', 'runAsUser'], 10001))).toBe(true);
  });

  it('embeds config/schema.json as it is now (run `npx node scripts/sync-chart.ts` after changing the config schema)', async () => {
    expect(await readFile(paths.valuesSchema, 'utf8')).toBe(await syncedValuesSchemaText());
  });

  it('has a default config that Breakwater itself loads, as the ConfigMap renders it', () => {
    // The ConfigMap holds `toYaml .Values.config`: the same data, keys in another order.
    const result = parseConfig(stringify(values.config, { sortMapEntries: true }), 'breakwater.yaml');
    expect(result.ok ? [] : result.problems).toEqual([]);
  });

  it('gives the pod longer to stop than Breakwater may spend draining', () => {
    const shutdown = values.config.shutdown as { drainTimeout: string };
    expect((values.terminationGracePeriodSeconds as number) * 1000).toBeGreaterThan(parseDuration(shutdown.drainTimeout));
  });

  it('runs the Breakwater release the chart is for', async () => {
    const chartYaml = parse(await readFile(join(chart, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const packageJson = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(chartYaml.appVersion).toBe(packageJson.version);
    expect((values.image as { tag: string }).tag).toBe(packageJson.version);
  });

  it('comments every key, and every list item of the default config', () => {
    const uncommented: string[] = [];
    const visit = (node: YamlNode | null | undefined, path: string[]): void => {
      if (isMap(node)) {
        node.items.forEach((pair, index) => {
          const key = isScalar(pair.key) ? String(pair.key.value) : '?';
          const value = pair.value as YamlNode | null;
          const commented =
            Boolean((pair.key as YamlNode).commentBefore) ||
            (index === 0 && Boolean(node.commentBefore)) ||
            Boolean(value?.comment) ||
            (!isScalar(value) && Boolean(value?.commentBefore));
          if (!commented) uncommented.push([...path, key].join('.'));
          // Keys inside list items are explained by the comment on the item; scalar items need none.
          if (!isSeq(value)) visit(value, [...path, key]);
          else
            value.items.forEach((item, itemIndex) => {
              const itemCommented = Boolean((item as YamlNode).commentBefore) || (itemIndex === 0 && Boolean(value.commentBefore));
              if (isMap(item) && !itemCommented) uncommented.push(`${[...path, key].join('.')}[${itemIndex}]`);
            });
        });
      }
    };
    visit(parseDocument(valuesText).contents, []);
    expect(uncommented).toEqual([]);
  });
});

describe('files the chart carries', () => {
  it("embeds Breakwater's alert rules exactly as deploy/prometheus has them (run `npx node scripts/sync-chart.ts` after changing them)", async () => {
    const [source, copy] = await Promise.all([readFile(paths.rules, 'utf8'), readFile(paths.chartRules, 'utf8')]);
    expect(copy).toBe(source);
    expect(parse(copy)).toHaveProperty('groups');
  });
});

describe('templates', async () => {
  const templateFiles = (await filesUnder(join(chart, 'templates'))).sort();
  const sources = new Map(await Promise.all(templateFiles.map(async (file) => [relative(chart, file), await readFile(file, 'utf8')] as const)));
  const parsed = new Map([...sources].map(([file, text]) => [file, actions(text)] as const));
  const defined = [...parsed.values()].flatMap(definedTemplates);

  it('renders every resource the issue asks for', () => {
    expect([...sources.keys()]).toEqual(
      expect.arrayContaining([
        'templates/_helpers.tpl',
        'templates/NOTES.txt',
        'templates/configmap.yaml',
        'templates/deployment.yaml',
        'templates/service.yaml',
        'templates/serviceaccount.yaml',
        'templates/servicemonitor.yaml',
        'templates/prometheusrule.yaml',
        'templates/tests/test-connection.yaml',
      ]),
    );
  });

  it.each([...sources.keys()])('%s nests its if/range/with/define blocks', (file) => {
    expect(blockProblems(parsed.get(file)!)).toEqual([]);
  });

  it.each([...sources.keys()])('%s includes only templates the chart defines', (file) => {
    const missing = includedTemplates(parsed.get(file)!).filter(({ name }) => !defined.includes(name));
    expect(missing).toEqual([]);
  });

  it.each([...sources.keys()])('%s reads only values that values.yaml declares', (file) => {
    const undeclared = valuePaths(parsed.get(file)!).filter(({ path }) => {
      let node: unknown = values;
      for (const key of path) {
        if (node === null || typeof node !== 'object' || !(key in node)) return true;
        node = (node as Record<string, unknown>)[key];
      }
      return false;
    });
    expect(undeclared).toEqual([]);
  });

  it.each([...sources.keys()].filter((file) => file.endsWith('.yaml')))('%s is YAML once its actions are taken out', (file) => {
    const text = sources.get(file)!;
    const documents = parseAllDocuments(skeleton(text, parsed.get(file)!));
    const errors = (Array.isArray(documents) ? documents : [documents]).flatMap((document) => document.errors.map((error) => error.message));
    expect(errors).toEqual([]);
  });

  it('has YAML bodies in every named template, once their actions are taken out', () => {
    const text = sources.get('templates/_helpers.tpl')!;
    const broken = defineBodies(text, parsed.get('templates/_helpers.tpl')!).flatMap((body) =>
      parseDocument(skeleton(body.text, body.actions)).errors.map((error) => `${body.name}: ${error.message}`),
    );
    expect(broken).toEqual([]);
  });

  it('reads only files the chart has', () => {
    const read = [...parsed.values()].flatMap((all) => all.flatMap((action) => [...action.body.matchAll(/\.Files\.Get\s+"([^"]+)"/g)].map((match) => match[1]!)));
    expect(read).toEqual(['files/breakwater-rules.yaml']);
    expect(sources.has('templates/prometheusrule.yaml')).toBe(true);
  });

  it('offers the sidecar templates other charts include', () => {
    expect(defined).toEqual(
      expect.arrayContaining([
        'breakwater.sidecar.initContainers',
        'breakwater.sidecar.containers',
        'breakwater.sidecar.volumes',
        'breakwater.sidecar.appEnv',
        'breakwater.sidecar.appProbe',
        'breakwater.sidecar.config',
        'breakwater.sidecar.podAnnotations',
      ]),
    );
  });

  it("sends the service's probes through the telemetry port and writes their targets into the config it mounts", () => {
    const deployment = sources.get('templates/deployment.yaml')!;
    for (const [field, kind] of [['startupProbe', 'startupz'], ['readinessProbe', 'readyz'], ['livenessProbe', 'livez']]) {
      expect(deployment).toMatch(new RegExp(`${field}:\\s*\\{\\{-? include "breakwater.sidecar.appProbe" \\(dict [^)]*"kind" "${kind}"\\)`));
    }
    expect(sources.get('templates/configmap.yaml')).toMatch(/include "breakwater.sidecar.config"/);
    const helpers = sources.get('templates/_helpers.tpl')!;
    expect(helpers).toMatch(/path: \/app-health\/app\/\{\{ \.kind \}\}/);
    expect(helpers).toMatch(/dict "readyz" "readinessProbe" "livez" "livenessProbe" "startupz" "startupProbe"/);
  });

  it("mounts the state volume at the folder of the config's sqlite stores: an existing claim, else an emptyDir of stores.sqlite.sizeLimit", () => {
    const helpers = sources.get('templates/_helpers.tpl')!;
    const bodies = new Map(defineBodies(helpers, parsed.get('templates/_helpers.tpl')!).map((body) => [body.name, body.text] as const));
    // The folder comes from config.stores, so the mount follows the config's `path`.
    const folder = bodies.get('breakwater.sidecar.sqliteFolder')!;
    expect(folder).toMatch(/range \$name, \$store := \(dig "stores" \(dict\) \.values\.config\)/);
    expect(folder).toMatch(/eq \(toString \$store\.type\) "sqlite"/);
    expect(folder).toMatch(/\$dir := dir \$path/);
    // A path the chart cannot mount is refused at install, with the store's name.
    expect(folder).toMatch(/fail \(printf "config\.stores\.%s\.path %q: give the sqlite file as a literal absolute path/);
    expect(folder).toMatch(/has \$dir \(list "\/" "\/tmp" "\/etc\/breakwater"\)/);
    expect(folder).toMatch(/keep their files in different folders/);
    expect(bodies.get('breakwater.sidecar.container')).toMatch(
      /\{\{- with include "breakwater\.sidecar\.sqliteFolder" \. \}\}\n(\s*#.*\n)*\s+- name: breakwater-state\n\s+mountPath: \{\{ \. \}\}/,
    );
    const volumes = bodies.get('breakwater.sidecar.volumes')!;
    expect(volumes).toMatch(/\{\{- if include "breakwater\.sidecar\.sqliteFolder" \. \}\}\n- name: breakwater-state/);
    expect(volumes).toMatch(/persistentVolumeClaim:\n\s+claimName: \{\{ \.values\.stores\.sqlite\.existingClaim \}\}/);
    expect(volumes).toMatch(/emptyDir:\n\s+sizeLimit: \{\{ \.values\.stores\.sqlite\.sizeLimit \}\}/);
    // One claim shared by several pods would put one SQLite file on a network disk.
    expect(sources.get('templates/deployment.yaml')).toMatch(
      /if and \.Values\.stores\.sqlite\.existingClaim \(gt \(int \.Values\.replicaCount\) 1\) \(include "breakwater\.sidecar\.sqliteFolder" \$sidecar\)\s*\}\}\n\{\{- fail/,
    );
  });

  it('passes the Redis URL and password from the Secret as the variables config.stores names, never into the ConfigMap', () => {
    const helpers = sources.get('templates/_helpers.tpl')!;
    const bodies = new Map(defineBodies(helpers, parsed.get('templates/_helpers.tpl')!).map((body) => [body.name, body.text] as const));
    const storeEnv = bodies.get('breakwater.sidecar.storeEnv')!;
    for (const [variable, key] of [['BREAKWATER_REDIS_URL', 'urlKey'], ['BREAKWATER_REDIS_PASSWORD', 'passwordKey']]) {
      expect(storeEnv).toMatch(
        new RegExp(`- name: ${variable}\\n\\s+valueFrom:\\n\\s+secretKeyRef:\\n\\s+name: \\{\\{ \\$redis\\.existingSecret \\}\\}\\n\\s+key: \\{\\{ \\.values\\.stores\\.redis\\.${key} \\}\\}`),
      );
      // The names values.yaml tells users to write in config.stores.
      expect(valuesText).toContain(variable);
    }
    // The sidecar's env holds them beside sidecar.env; the ConfigMap only ever holds the config.
    expect(bodies.get('breakwater.sidecar.container')).toMatch(/\$storeEnv := include "breakwater\.sidecar\.storeEnv" \. \| trim/);
    expect(sources.get('templates/configmap.yaml')).not.toMatch(/stores\.redis|secretKeyRef/);
  });

  it('never restarts pods for a policy edit: no config checksum on the pod, the ConfigMap mounted as a folder', () => {
    const all = [...sources.values()].join('\n');
    expect(all).not.toMatch(/checksum\//);
    expect(all).not.toMatch(/^\s*-?\s*subPath:/m);
    expect(sources.get('templates/NOTES.txt')).toMatch(/does NOT restart the pods/);
  });
});
