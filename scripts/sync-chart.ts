// Brings the Helm chart's copies up to date with their sources (`npx node scripts/sync-chart.ts`):
//   - `config` in helm/breakwater/values.schema.json becomes config/schema.json, so that
//     `helm install` checks route policies with Breakwater's own schema;
//   - helm/breakwater/files/breakwater-rules.yaml becomes deploy/prometheus/breakwater-rules.yaml,
//     since Helm's .Files can only read files inside the chart.
// test/unit/helm/chart.test.ts fails while either copy differs from its source.

import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);

export const paths = {
  configSchema: fileURLToPath(new URL('config/schema.json', root)),
  valuesSchema: fileURLToPath(new URL('helm/breakwater/values.schema.json', root)),
  rules: fileURLToPath(new URL('deploy/prometheus/breakwater-rules.yaml', root)),
  chartRules: fileURLToPath(new URL('helm/breakwater/files/breakwater-rules.yaml', root)),
};

type JsonObject = Record<string, unknown>;

/** values.schema.json with its `config` property replaced by Breakwater's config schema. */
export function withConfigSchema(valuesSchema: JsonObject, configSchema: JsonObject): JsonObject {
  // $schema and $id belong to a root document; inside the values schema they would only clash.
  const { $schema: _schema, $id: _id, ...config } = configSchema;
  const properties = valuesSchema.properties as JsonObject;
  return {
    ...valuesSchema,
    properties: {
      ...properties,
      config: { ...config, description: "Breakwater's config, written verbatim to breakwater.yaml (config/schema.json)." },
    },
  };
}

/** The text values.schema.json should have. */
export async function syncedValuesSchemaText(): Promise<string> {
  const valuesSchema = JSON.parse(await readFile(paths.valuesSchema, 'utf8')) as JsonObject;
  const configSchema = JSON.parse(await readFile(paths.configSchema, 'utf8')) as JsonObject;
  return `${JSON.stringify(withConfigSchema(valuesSchema, configSchema), null, 2)}\n`;
}

if (import.meta.main) {
  await writeFile(paths.valuesSchema, await syncedValuesSchemaText());
  console.log(`wrote ${paths.valuesSchema}`);
  await copyFile(paths.rules, paths.chartRules);
  console.log(`wrote ${paths.chartRules}`);
}
