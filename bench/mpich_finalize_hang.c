/* The MPICH/UCX finalize hang of docs/experiments.md ("MPICH"), without the library: duplicate
 * MPI_COMM_WORLD, one allreduce on the duplicate, free it, finalize. With Debian's MPICH 4.0.2
 * (ch4:ucx) restricted to UCX's TCP transport, some runs with 3+ ranks never leave
 * MPI_Finalize:
 *   mpicc.mpich -O1 bench/mpich_finalize_hang.c -o /tmp/mpich_finalize_hang
 *   for i in 1 2 3 4 5 6; do timeout 8 mpiexec.mpich -n 4 -iface lo -genv UCX_TLS tcp,self \
 *       -genv UCX_NET_DEVICES lo -genv MPIR_CVAR_NOLOCAL 1 /tmp/mpich_finalize_hang \
 *       && echo exited || echo "hung (timeout)"; done
 */
#include <mpi.h>

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    double x[1000] = {0}, y[1000];
    MPI_Allreduce(x, y, 1000, MPI_DOUBLE, MPI_SUM, dup);
    MPI_Comm_free(&dup);
    MPI_Finalize();
    return 0;
}
