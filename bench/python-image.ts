/**
 * The python image (issue 16's "Python interpreter from the image importing numpy"): one gzip
 * layer per Debian package a `python3.11` interpreter and `python3-numpy` need to run in a chroot
 * (found by unpacking them and importing until it worked), and a last layer holding what the
 * packages' maintainer scripts would have written when an image builder installed them:
 * - the BLAS and LAPACK alternatives (`update-alternatives` in libblas3's and liblapack3's
 *   postinst): without them the loader finds no libblas.so.3 and numpy does not import;
 * - the byte code (`__pycache__/*.pyc`; Debian's packages ship none, py3compile writes it at
 *   install): without it every run would compile every imported module, and the figure would be
 *   the compiler's, not the file system's.
 * That last layer is made by unpacking the package layers into a scratch directory and running the
 * image's own python3.11 there in a chroot (so it needs root), and cached like the others.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cachedLayer, commandStream, packageLayers, writeLayerBlob, type CachedLayer } from './images.js';
import { CACHE_DIR } from './paths.js';
import { check, exec } from './proc.js';

/**
 * Every package the import needs (removing any one of them breaks it), then the libraries of the
 * standard library's other extension modules (bz2, lzma, ctypes, uuid, crypt), which a real
 * image holds as libpython3.11-stdlib's dependencies.
 */
export const PYTHON_PACKAGES = [
  'libc6',
  'libgcc-s1',
  'zlib1g',
  'libexpat1',
  'libssl3',
  'libsqlite3-0',
  'libpython3.11-minimal',
  'python3.11-minimal',
  'libpython3.11-stdlib',
  'libgfortran5',
  'libquadmath0',
  'libblas3',
  'liblapack3',
  'python3-numpy',
  'libbz2-1.0',
  'liblzma5',
  'libffi8',
  'libuuid1',
  'libcrypt1',
] as const;

/** The interpreter, as the image's own path. */
export const PYTHON = '/usr/bin/python3.11';
/** Where the byte code goes: the standard library and Debian's dist-packages (numpy). */
const COMPILED_DIRS = ['/usr/lib/python3.11', '/usr/lib/python3/dist-packages'];
/** The alternatives the postinst scripts install: link name and the file it points to, under usr/lib/<multiarch>/. */
const ALTERNATIVES = [
  { link: 'libblas.so.3', target: 'blas/libblas.so.3' },
  { link: 'liblapack.so.3', target: 'lapack/liblapack.so.3' },
];

export type PythonLayers = { readonly layers: CachedLayer[] } | { readonly unavailable: string };

/** The python image's layers, built on first use; `workDir` holds the scratch tree of the last layer. */
export async function pythonLayers(workDir: string): Promise<PythonLayers> {
  const packages = await packageLayers(PYTHON_PACKAGES);
  if ('fallback' in packages) return { unavailable: packages.fallback };
  const key = createHash('sha256')
    .update(packages.map((layer) => layer.digest).join('\n'))
    .digest('hex')
    .slice(0, 16);
  const blobPath = join(CACHE_DIR, 'blobs', `python-postinst-${key}.tar.gz`);
  const cached = await cachedLayer(blobPath);
  if (cached) return { layers: [...packages, cached] };
  if (process.getuid?.() !== 0) return { unavailable: 'building the byte code needs a chroot into the unpacked packages (root)' };
  process.stderr.write('building the python image\'s postinst layer (alternatives, byte code)\n');
  const root = await mkdtemp(join(workDir, 'python-build-'));
  try {
    for (const layer of packages) await check('tar', ['-xzf', layer.blobPath, '-C', root], { timeoutMs: 600_000 });
    const added = [...(await linkAlternatives(root)), ...(await compileByteCode(root))];
    const list = join(workDir, 'python-postinst.list');
    await writeFile(list, `${added.join('\n')}\n`);
    const tar = commandStream('tar', ['-C', root, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-T', list]);
    return { layers: [...packages, await writeLayerBlob('python-postinst', 'alternatives and byte code written in a chroot', tar, blobPath)] };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Creates the alternatives' links as update-alternatives does (through /etc/alternatives); returns their paths. */
async function linkAlternatives(root: string): Promise<string[]> {
  const libDir = join(root, 'usr', 'lib');
  const multiarch = (await readdir(libDir, { withFileTypes: true })).find((entry) => entry.isDirectory() && /-linux-gnu/.test(entry.name))?.name;
  if (multiarch === undefined) throw new Error(`no usr/lib/<multiarch> directory in the python image's packages`);
  await mkdir(join(root, 'etc', 'alternatives'), { recursive: true });
  const paths = ['etc/alternatives'];
  for (const { link, target } of ALTERNATIVES) {
    const name = `${link}-${multiarch}`;
    await symlink(`/usr/lib/${multiarch}/${target}`, join(root, 'etc', 'alternatives', name));
    await symlink(`/etc/alternatives/${name}`, join(libDir, multiarch, link));
    paths.push(`usr/lib/${multiarch}/${link}`);
  }
  return paths;
}

/** Compiles the standard library and dist-packages with the image's interpreter; returns the __pycache__ directories. */
async function compileByteCode(root: string): Promise<string[]> {
  // Timestamp-checked .pyc files, as py3compile writes (named explicitly: SOURCE_DATE_EPOCH would switch compileall's default to hashes).
  const env = { ...process.env, LC_ALL: 'C' };
  // Some test files of the standard library are not valid Python on purpose: compileall's exit code is not checked.
  const compiled = await exec('chroot', [root, PYTHON, '-m', 'compileall', '-q', '--invalidation-mode', 'timestamp', ...COMPILED_DIRS], { env, timeoutMs: 900_000 });
  const found = await check('find', ['.', '-type', 'd', '-name', '__pycache__'], { cwd: root });
  const dirs = found.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.replace(/^\.\//, ''));
  if (dirs.length === 0) throw new Error(`compileall wrote no byte code in the python image (exit ${compiled.code}): ${compiled.stderr.slice(-1000)}`);
  return dirs;
}
