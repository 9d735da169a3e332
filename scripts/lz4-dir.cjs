'use strict'
// Prints the directory of the LZ4 C sources that lmdb-js ships (its package
// exports hide package.json, so its root is found from its main file), for
// native/lz4/binding.gyp: relative to the working directory, as gyp's make
// output wants source paths.
const fs = require('fs')
const path = require('path')

let dir = path.dirname(require.resolve('lmdb', { paths: [path.join(__dirname, '..')] }))
while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir)
process.stdout.write(path.relative(process.cwd(), path.join(dir, 'dependencies', 'lz4', 'lib')))
