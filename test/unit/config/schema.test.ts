import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { allProblems, formatProblem, parseConfig } from '../../../src/config/load.ts';
import { lintConfig } from '../../../src/lint/warnings.ts';
import { configJsonSchemaText } from '../../../src/config/schema.ts';

const root = new URL('../../../', import.meta.url).pathname;
const committedSchema = readFileSync(join(root, 'config/schema.json'), 'utf8');

function yamlFilesUnder(folder: string): string[] {
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.ya?ml$/.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

type JsonSchema = Record<string, unknown>;

/** Every sub-schema, with where it sits, for the checks that must hold everywhere. */
function* subschemas(schema: JsonSchema, at = '#'): Generator<[string, JsonSchema]> {
  yield [at, schema];
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'default' || key === 'enum' || value === null || typeof value !== 'object') continue;
    if (key === 'properties') {
      for (const [name, property] of Object.entries(value as Record<string, JsonSchema>)) yield* subschemas(property, `${at}/properties/${name}`);
    } else if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) if (item !== null && typeof item === 'object') yield* subschemas(item as JsonSchema, `${at}/${key}/${index}`);
    } else {
      yield* subschemas(value as JsonSchema, `${at}/${key}`);
    }
  }
}

describe('config/schema.json', () => {
  it('is what the generator writes (run `npm run schema` after changing src/config/schema.ts)', () => {
    expect(committedSchema, 'config/schema.json is stale: run `npm run schema`').toBe(configJsonSchemaText());
  });

  it('declares its draft, an id and a title', () => {
    const schema = JSON.parse(committedSchema) as JsonSchema;
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.$id).toEqual(expect.any(String));
    expect(schema.title).toEqual(expect.any(String));
  });

  it('gives every property a title and a description, for editors', () => {
    const schema = JSON.parse(committedSchema) as JsonSchema;
    const undocumented = [...subschemas(schema)]
      .filter(([at]) => /\/properties\/[^/]+$/.test(at))
      .filter(([, property]) => typeof property.title !== 'string' || typeof property.description !== 'string')
      .map(([at]) => at);
    expect(undocumented).toEqual([]);
  });

  it('refuses unknown keys in every object', () => {
    const schema = JSON.parse(committedSchema) as JsonSchema;
    const open = [...subschemas(schema)]
      .filter(([, node]) => node.type === 'object' && node.additionalProperties !== false && node.properties !== undefined)
      .map(([at]) => at);
    expect(open).toEqual([]);
  });

  it('accepts the shipped configs on its own, as an editor would use it', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(committedSchema) as JsonSchema);
    for (const file of yamlFilesUnder(join(root, 'config'))) {
      expect(validate(parseYaml(readFileSync(file, 'utf8'))), `${file}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
    expect(validate({ routes: [{ name: 'a', upstream: 'b', retry: { retryon: [503] } }] })).toBe(false);
    expect(validate({ routes: [{ name: 'a', upstream: 'b', timeout: '2 seconds' }] })).toBe(false);
  });
});

describe('the shipped configs', () => {
  const files = yamlFilesUnder(join(root, 'config'));

  it('include the example npm start runs and the focused examples', () => {
    const names = files.map((file) => relative(root, file));
    expect(names).toContain('config/breakwater.yaml');
    expect(names).toEqual(expect.arrayContaining(['config/examples/minimal.yaml', 'config/examples/retries-and-breaker.yaml', 'config/examples/fallback.yaml']));
  });

  it.each(files.map((file) => [relative(root, file), file]))('%s is valid, without warnings', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    const result = parseConfig(text, file, { lint: lintConfig });
    expect(allProblems(result).map(formatProblem)).toEqual([]);
    expect(text.split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=(\.\/|\.\.\/)schema\.json$/);
  });
});
