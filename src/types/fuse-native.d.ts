// Loose ambient typing for fuse-native (CommonJS, no bundled types).
// Use src/fuse/native.ts (loadFuse) for the typed, robust entry point.
declare module 'fuse-native' {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const Fuse: any
  export = Fuse
}
