import type { Argv } from 'yargs'
import { Volume } from '../volume/volume.js'
import { readVolumeFile, createVolumeFile, chunkIdHashOf, upgradeRoleKey, nodeIdOfSeed } from '../volume/volume-file.js'
import { encodeInvite, decodeInvite } from '../volume/invite.js'
import { fail } from '../errors.js'
import { randomKey, roleKeyOf } from '../crypto/volume-keys.js'
import { dataDirOf, configOf, passwords, type GlobalArgs } from './common.js'

export function inviteCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('invite', 'print a join code for another machine (a secret!)',
    a => a.option('storage-only', { type: 'boolean', default: false, describe: 'the new member stores and serves encrypted chunks but cannot read data or names' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const config = await configOf(argv)
      const file = await readVolumeFile(dataDir)
      if (file.role !== 'full') throw fail('EPERM', 'only a full member can invite')
      const volume = await Volume.open(dataDir, await passwords(argv).password(), { maxStoreBytes: config.maxStoreBytes, readOnly: true })
      try {
        const storage = Boolean(argv['storage-only'])
        // The master key never leaves for a storage-only member: it gets the swarm key alone.
        const key = storage ? volume.full.keys.swarm : masterOf(volume)
        // The new member's identity is made here and certified at once, so it
        // can present its certificate to whichever member it meets first.
        const role = storage ? 'storage' : 'full'
        const seed = randomKey()
        const memberCert = volume.members.certificateFor(nodeIdOfSeed(seed), role)
        const code = encodeInvite({ volumeId: file.volumeId, role, chunkSize: file.chunkSize, key, chunkIdHash: chunkIdHashOf(file), fullRoleKey: roleKeyOf(masterOf(volume)).publicKey, seed, memberCert })
        process.stderr.write(`This join code is a secret: whoever holds it can ${storage ? 'store this volume\'s encrypted chunks' : 'read and write this volume'}. Send it privately.\n`)
        process.stdout.write(code + '\n')
      } finally {
        await volume.close()
      }
    })
}

export function joinCommand (y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y.command('join <code>', 'set up this data dir as a member of the volume a join code names',
    a => a.positional('code', { type: 'string', demandOption: true })
      .option('upgrade', { type: 'boolean', default: false, describe: 'a storage-only member that joined with a code older than version 3: take the full-member role key from this new storage-only code of the same volume, keeping identity and store' }),
    async argv => {
      const dataDir = dataDirOf(argv)
      const invite = decodeInvite(String(argv.code))
      if (argv.upgrade === true) {
        const f = await upgradeRoleKey(dataDir, invite, await passwords(argv).password())
        process.stdout.write(`node ${f.nodeId.slice(0, 16)} now checks full members' role proofs (volume ${f.volumeId})\n`)
        return
      }
      const f = await createVolumeFile(dataDir, await passwords(argv).newPassword(), invite.chunkSize, { volumeId: invite.volumeId, role: invite.role, key: invite.key, chunkIdHash: invite.chunkIdHash, fullRoleKey: invite.role === 'storage' ? invite.fullRoleKey : undefined, seed: invite.seed, memberCert: invite.memberCert })
      if (!invite.memberCert) process.stderr.write('Note: this join code is from an older disktro and carries no member certificate: members that check certificates will not accept this node. Ask for a new code.\n')
      process.stdout.write(`joined volume ${f.volumeId} as a ${f.role === 'full' ? 'full' : 'storage-only'} member (node ${f.nodeId.slice(0, 16)}) in ${dataDir}\n`)
    })
}

function masterOf (volume: Volume): Buffer {
  const m = volume.master
  if (!m) throw fail('EPERM', 'this node does not hold the master key')
  return m
}
