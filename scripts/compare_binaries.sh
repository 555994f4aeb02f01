#!/bin/bash
# Usage: scripts/compare_binaries.sh OLD_BIN NEW_BIN OUT_DIR: the quickstart, a short 2-D run and
# the first 10 bench steps with both binaries; prints every difference in anything but times
# (a refactoring must end with "DIFFERENCES: 0"). Bench steps use data/mnist when present.
set -u
OLD=$1; NEW=$2; OUT=$3
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
for which in old new; do
  BIN=$OLD; [ $which = new ] && BIN=$NEW
  FLOWVAE_THREADS=1 $BIN run experiments/quickstart.yaml --results $OUT/$which --run-id q > $OUT/$which-quick.log 2>&1
  FLOWVAE_THREADS=1 $BIN run experiments/two_moons_realnvp.yaml --set train.steps=300 --results $OUT/$which --run-id m > $OUT/$which-2d.log 2>&1
  for k in 16 0; do
    FLOWVAE_THREADS=1 $BIN bench --json train --k $k --steps 10 --warmup 0 > $OUT/$which-bench$k.json 2>/dev/null
  done
done
python3 - "$OUT" <<'PY'
import json,sys,glob,os,csv
out=sys.argv[1]
TIMES={'cpu_seconds','eval_seconds','train_seconds','wall_seconds','versions','threads','time_s','elapsed'}
def strip(v):
    if isinstance(v,dict): return {k:strip(x) for k,x in v.items() if k not in TIMES}
    return v
bad=0
for f in sorted(glob.glob(out+'/old/**/summary.json',recursive=True)):
    g=f.replace('/old/','/new/')
    a=strip(json.load(open(f))); b=strip(json.load(open(g)))
    same=a==b; bad+= not same
    print('summary', os.path.relpath(f,out), 'SAME' if same else 'DIFF')
    if not same: print(' old',a,'\n new',b)
for f in sorted(glob.glob(out+'/old/**/metrics.csv',recursive=True)):
    g=f.replace('/old/','/new/')
    ra=list(csv.reader(open(f))); rb=list(csv.reader(open(g)))
    h=ra[0]; keep=[i for i,c in enumerate(h) if c not in TIMES and not c.endswith('seconds') and c!='time_s']
    sa=[[r[i] for i in keep] for r in ra]; sb=[[r[i] for i in keep] for r in rb]
    same=sa==sb; bad+= not same
    print('metrics', os.path.relpath(f,out), 'SAME' if same else 'DIFF', len(ra)-1, 'rows')
for k in ['16','0']:
    a=json.load(open(f'{out}/old-bench{k}.json')); b=json.load(open(f'{out}/new-bench{k}.json'))
    fa=a.get('final_neg_elbo'); fb=b.get('final_neg_elbo')
    print('bench k',k,'final_neg_elbo',fa,fb,'SAME' if fa==fb else 'DIFF'); bad+= fa!=fb
print('DIFFERENCES:',bad)
PY
