#!/bin/bash
# issue 18 item 8: the 9 runs one after another, one thread; each retried (resumed) up to 3 times.
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=runs/ssd-repro3
for spec in sngan:0 ssd-sngan:0 ssd-sngan-weighted:0 sngan:1 ssd-sngan:1 ssd-sngan-weighted:1 sngan:2 ssd-sngan:2 ssd-sngan-weighted:2; do
  name=${spec%%:*}; seed=${spec##*:}
  if [ -f $D/between.sh ]; then mv $D/between.sh $D/between.running; echo "$(date -u +%T) between.sh"; bash $D/between.running; echo "$(date -u +%T) between.sh exit $?"; mv $D/between.running $D/between.done; fi
  model=$name; extra=()
  if [ $name = ssd-sngan-weighted ]; then model=ssd-sngan; extra=(--set loss.combine=weighted); fi
  out=$D/$name-s$seed
  for attempt in 1 2 3; do
    res=(); [ -f $out/last.pt ] && res=(--resume)
    echo "$(date -u +%T) start $name seed $seed attempt $attempt"
    .venv/bin/python training/train_unconditional.py -c training/configs/unconditional_cpu.yaml --model $model --seed $seed \
      --out $out --threads 1 "${extra[@]}" "${res[@]}" > $out.log 2>&1 && { echo "$(date -u +%T) done $name seed $seed"; break; }
    echo "$(date -u +%T) failed $name seed $seed (exit $?)"; sleep 30
  done
done
if [ -f $D/between.sh ]; then mv $D/between.sh $D/between.running; bash $D/between.running; mv $D/between.running $D/between.done; fi
echo "$(date -u +%T) all done"
