#!/bin/bash
# Asks the VIP every 100 ms (from the switch namespace) and prints who answered, so a failover
# shows as a short gap. Stops after ${1:-600} seconds or Ctrl-C.
end=$((SECONDS + ${1:-600}))
while [ $SECONDS -lt $end ]; do
  answer=$(ip netns exec halo-demo-sw curl -s --max-time 0.5 http://198.18.1.100:8080/ \
           || echo "(no answer)")
  printf '%s  %s\n' "$(date +%T.%N | cut -c1-12)" "$answer"
  sleep 0.1
done
