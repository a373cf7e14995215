// Type-checks rendered manifests against the Kubernetes API's TypeScript types
// (kubernetes-types): every object becomes a typed constant in a generated .ts file, and
// TypeScript's excess-property check rejects any field the API does not have, at any depth, as
// well as wrong types (a port given as a string) and a wrong apiVersion for the kind.
//
//   NODE_PATH=<tools>/node_modules node typecheck_manifests.cjs OUT_DIR LABEL=OBJECTS.json...
//
// OUT_DIR must be under the directory holding node_modules, for the imports to resolve.
// Exits 1 with TypeScript's diagnostics when any object does not type-check.
"use strict";
const fs = require("fs");
const path = require("path");
const ts = require("typescript");

// Custom resources have no types here; validate_manifests.cjs lets them through too.
const CUSTOM_RESOURCES = new Set(["monitoring.coreos.com/v1/ServiceMonitor"]);

function typesModule(apiVersion) {
  // The core group is "v1" in manifests and core/v1 in kubernetes-types.
  return `kubernetes-types/${apiVersion.includes("/") ? apiVersion : "core/" + apiVersion}`;
}

function sourceFor(objects) {
  const imports = new Map();  // module -> Set of kinds
  const constants = [];
  objects.forEach((object, i) => {
    if (CUSTOM_RESOURCES.has(`${object.apiVersion}/${object.kind}`)) return;
    const module = typesModule(object.apiVersion);
    if (!imports.has(module)) imports.set(module, new Set());
    imports.get(module).add(object.kind);
    const name = `${object.kind}_${i}_${String(object.metadata.name).replace(/\W/g, "_")}`;
    constants.push(`export const ${name}: ${object.kind} = ${JSON.stringify(object, null, 2)};`);
  });
  const lines = [...imports].map(
      ([module, kinds]) => `import type { ${[...kinds].join(", ")} } from "${module}";`);
  return lines.concat(constants).join("\n") + "\n";
}

function main([outDir, ...inputs]) {
  if (!outDir || inputs.length === 0) {
    console.error("usage: typecheck_manifests.cjs OUT_DIR LABEL=OBJECTS.json...");
    return 2;
  }
  fs.mkdirSync(outDir, { recursive: true });
  const files = inputs.map((input) => {
    const [label, jsonPath] = input.split("=");
    const file = path.join(outDir, `${label.replace(/\W/g, "_")}.ts`);
    fs.writeFileSync(file, sourceFor(JSON.parse(fs.readFileSync(jsonPath, "utf8"))));
    return file;
  });
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    types: [],
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    console.error(ts.formatDiagnostics(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => outDir,
      getNewLine: () => "\n",
    }));
    return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
