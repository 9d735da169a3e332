import type { Argv } from 'yargs'
import { Volume } from '../volume/volume.js'
import { readVolumeFile } from '../volume/volume-file.js'
import { dataDirOf, configOf, passwords, type GlobalArgs } from './common.js'

export function initCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('init', 'create a new volume in the data dir', a => a, async argv => {
    const dataDir = dataDirOf(argv)
    const config = await configOf(argv)
    await Volume.create(dataDir, await passwords(argv).newPassword(), config.chunkSize)
    const f = await readVolumeFile(dataDir)
    process.stdout.write(`created volume ${f.volumeId} in ${dataDir} (chunk size ${config.chunkSize} bytes)\n`)
  })
}
