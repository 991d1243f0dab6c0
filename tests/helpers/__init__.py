"""What the test modules share: processes and servers, the marketplace's signed calls, the
simulator's world, the browsers, and the rows and bodies the tests build. No test module is
imported by another; benchmarks use these too."""
