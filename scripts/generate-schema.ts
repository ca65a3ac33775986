// Writes config/schema.json from the TypeBox schema in src/config/schema.ts (`npm run schema`).
// A unit test fails when the committed file and this output differ.

import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from '../src/config/schema.ts';

const target = fileURLToPath(new URL('../config/schema.json', import.meta.url));
await writeFile(target, configJsonSchemaText());
console.log(`wrote ${target}`);
