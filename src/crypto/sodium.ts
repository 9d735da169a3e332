import { createRequire } from 'node:module'
// sodium-native is CommonJS; load it once, typed by @types/sodium-native.
const require = createRequire(import.meta.url)
const sodium: typeof import('sodium-native') = require('sodium-native')
export default sodium
