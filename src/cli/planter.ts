#!/usr/bin/env node
import { runPlanter } from "./Main.js"

runPlanter(process.argv)
