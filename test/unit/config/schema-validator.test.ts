// The config validator Breakwater runs is compiled ahead of time from the schema; these checks
// fail when the committed one no longer matches the schema, or no longer sees what the schema
// says.

import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { configValidatorSource, paths, validationSchema } from '../../../scripts/generate-schema.ts';
import { configJsonSchema } from '../../../src/config/schema.ts';
import { validate as generated } from '../../../src/config/schema-validator.generated.ts';

const validate = generated as unknown as ValidateFunction;

const root = new URL('../../../', import.meta.url).pathname;

describe('src/config/schema-validator.generated.ts', () => {
  it('is what the generator writes (run `npm run schema` after changing src/config/schema.ts)', () => {
    expect(readFileSync(paths.validator, 'utf8'), 'the validator is stale: run `npm run schema`').toBe(configValidatorSource());
  });

  it('judges a file as Ajv compiling the whole schema at run time does, errors and all, less the annotations', () => {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    ajv.addKeyword('errorMessage');
    const atRunTime = ajv.compile(configJsonSchema());
    const example = parseYaml(readFileSync(`${root}config/breakwater.yaml`, 'utf8')) as Record<string, unknown>;
    const broken = {
      ...example,
      listenres: [],
      telemetry: { address: 'nowhere' },
      upstreams: { demo: { endpoints: [], connectTimeout: 'soon' } },
      routes: [{ name: 'a b', upstream: 'demo', retry: { maxAttempts: 0, retryOn: ['503', '503'] } }],
    };

    for (const data of [example, broken]) {
      const ahead = validate(structuredClone(data));
      const now = atRunTime(structuredClone(data));
      expect(ahead).toBe(now);
      // The compiled schema leaves out titles, descriptions and defaults, which nothing reads.
      const withoutAnnotations = atRunTime.errors?.map((error) => ({ ...error, schema: validationSchema(error.schema), parentSchema: validationSchema(error.parentSchema) }));
      expect(validate.errors).toEqual(withoutAnnotations ?? null);
    }
    expect(atRunTime.errors?.length).toBeGreaterThan(5);
  });
});
