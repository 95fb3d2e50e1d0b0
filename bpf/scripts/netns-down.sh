#!/bin/sh
ip netns del npcdbpf-a 2>/dev/null
ip netns del npcdbpf-b 2>/dev/null
true
