// Lint and format check in one pass: typescript-eslint's recommended rules,
// and Effect's dprint rule as the formatter (`npm run format` applies it).
// The dprint settings are the Effect project's own, which this code follows:
// 2 spaces, no semicolons, double quotes, no trailing commas, `function*()`.
import effect from "@effect/eslint-plugin"
import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "test/fixtures/**", "test/golden/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...effect.configs.dprint,
  {
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      // Effect's convention: a leading underscore marks a binding kept on
      // purpose (an ignored parameter, a field dropped by a rest pattern).
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_",
        ignoreRestSiblings: true
      }],
      // A job runner matches terminal escapes (ANSI colour, NUL in argv) on
      // purpose: stripping colour, refusing NUL bytes in paths.
      "no-control-regex": "off"
    }
  },
  {
    // Plain scripts (this file, scripts/*.mjs) run on Node.
    files: ["**/*.mjs"],
    languageOptions: { globals: { console: "readonly", process: "readonly" } }
  },
  {
    // Tests read the CLI's --json output with JSON.parse and poke at it
    // freely; the schemas under test are what checks its shape.
    files: ["test/**"],
    rules: { "@typescript-eslint/no-explicit-any": "off" }
  }
)
